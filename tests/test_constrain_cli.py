"""`llmlite run` and the REPL with --json-schema, --grammar and --regex."""
import json
import re

from helpers import llmlite

SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 16},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 30}},
          "required": ["name", "age"], "additionalProperties": False}


def test_run_json_schema_inline_and_from_a_file(smollm2_path, tmp_path):
    f = tmp_path / "cat.json"
    f.write_text(json.dumps(SCHEMA))
    for given in (json.dumps(SCHEMA), str(f)):
        r = llmlite("run", smollm2_path, "-p", "Describe a cat as JSON", "-n", "64", "--temp", "0",
                    "--json-schema", given)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert set(out) == {"name", "age"} and 0 <= out["age"] <= 30


def test_run_grammar_file_and_regex(smollm2_path):
    r = llmlite("run", smollm2_path, "-p", "A JSON object:", "-n", "48", "--temp", "0", "--raw",
                "--grammar", "tests/data/gbnf/json.gbnf")
    assert r.returncode == 0, r.stderr
    if "stop: eos" in r.stderr:
        json.loads(r.stdout)
    else:
        assert r.stdout.startswith("{")
    r = llmlite("run", smollm2_path, "-p", "A ticket id:", "-n", "16", "--regex", "T-[0-9]{3}", "--raw")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"T-[0-9]{3}\n?", r.stdout), r.stdout


def test_bad_constraints_are_one_line_errors(smollm2_path, tmp_path):
    bad = tmp_path / "bad.gbnf"
    bad.write_text('root ::= "x" missing\n')
    for args, part in ((("--json-schema", '{"type": "object", "properties": {"a": {"minimum": "x"}}}'), "minimum"),
                       (("--json-schema", '{"type": '), "not valid JSON"),
                       (("--grammar", str(bad)), "missing"),
                       (("--grammar", str(tmp_path / "none.gbnf")), "No such file"),
                       (("--regex", "[a-"), "regex")):
        for prompt in (("-p", "hi"), ()):          # -p, and the REPL (it checks before the first turn)
            r = llmlite("run", smollm2_path, *prompt, *args, input="hello\n")
            assert r.returncode == 2, (args, r.stderr)
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error:") and part in lines[0], (args, r.stderr)


def test_repl_replies_follow_the_schema(smollm2_path):
    r = llmlite("run", smollm2_path, "--json-schema", json.dumps(SCHEMA), "--temp", "0", "-n", "64",
                input="A cat as JSON\nA dog as JSON\n")
    assert r.returncode == 0, r.stderr
    replies = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert len(replies) == 2 and all(set(x) == {"name", "age"} for x in replies), r.stdout
