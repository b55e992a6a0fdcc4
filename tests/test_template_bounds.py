"""A chat template is untrusted input: its render is bounded in time and in the size of
what it builds, so a hostile GGUF cannot pin a CPU or exhaust memory (issue 18)."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("jinja2")

from helpers import llmlite, rewrite_gguf, run_python  # noqa: E402
from llmlite.chat import BUILTIN_TEMPLATES, ChatTemplate, ChatTemplateError  # noqa: E402

NESTED_LOOPS = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
DOUBLING = "{% set s = namespace(v='x') %}{% for i in range(60) %}{% set s.v = s.v ~ s.v %}{% endfor %}{{ s.v }}"
GROWING = "{% set s = namespace(v='') %}{% for i in range(100000) %}{% set s.v = s.v ~ ('x' * 100000) %}{% endfor %}"

SLOW = {
    "nested loops": NESTED_LOOPS,
    "nested loops over a string": "{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}{% endfor %}{% endfor %}",
    "exponential macro": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
}
LARGE = {
    "~ doubling": DOUBLING,
    "+ doubling": DOUBLING.replace("~", "+"),
    "~ in a loop": GROWING,
    "output in a loop": "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
    "join filter": "{{ (['x' * 1000000] * 1000) | join('') }}",
    "str.join": "{{ ''.join(['x' * 1000000] * 1000) }}",
    "str.center": "{{ 'x'.center(1000000000) }}",
    "center filter": "{{ 'x' | center(1000000000) }}",
    "batch filter": "{{ [1] | batch(1000000000, 0) | list }}",
    "printf width": "{{ '%0200000000d' % 1 }}",
    "str.format width": "{{ '{:>1000000000}'.format(1) }}",
    "str.format width argument": "{{ '{:>{}}'.format(1, 200000000) }}",
    "replace filter": "{{ ('x' * 1000) | replace('x', 'y' * 1000000) }}",
    "indent filter": "{{ ('\n' * 10000) | indent('y' * 1000000) }}",
    "wordwrap filter": "{{ ('x ' * 100000) | wordwrap(1, wrapstring='y' * 1000000) }}",
}
WIDE_JSON = {"tojson indent": "{{ (range(100000) | list) | tojson(indent=1000000) }}"}


@pytest.mark.parametrize("src, why", [(s, "longer than 1 s") for s in SLOW.values()] +
                         [(s, "over 4 Mi") for s in LARGE.values()] +
                         [(s, "JSON indent wider than 64") for s in WIDE_JSON.values()], ids=[*SLOW, *LARGE, *WIDE_JSON])
def test_hostile_template_stops_with_one_line(src, why):
    t0 = time.monotonic()
    with pytest.raises(ChatTemplateError) as ei:
        ChatTemplate(src, name="the model's chat template").render([{"role": "user", "content": "hi"}])
    assert time.monotonic() - t0 < 2
    msg = str(ei.value)
    assert msg.startswith("the model's chat template was stopped") and why in msg and "\n" not in msg, msg


def test_hostile_templates_do_not_grow_memory():
    # a fresh process, so ru_maxrss (the peak) measures these renders alone
    code = (
        "import resource, sys\n"
        "from llmlite.chat import ChatTemplate, ChatTemplateError\n"
        "ChatTemplate('{{ 1 }}').render([])\n"  # jinja2 and the environment are loaded before the baseline
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for src in sys.argv[1:]:\n"
        "    try:\n"
        "        ChatTemplate(src).render([])\n"
        "    except ChatTemplateError:\n"
        "        pass\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n")
    r = run_python(code, DOUBLING, DOUBLING.replace("~", "+"), LARGE["join filter"], LARGE["printf width"],
                   LARGE["str.format width"], timeout=60)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) < 200, f"peak RSS grew by {r.stdout.strip()} MB"


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "2+2?"}]


@pytest.mark.parametrize("src, expected", [
    # the loop variable's helpers see the whole iterable (length, last, revindex, cycle)
    (("{% for m in messages %}{{ loop.index }}/{{ loop.length }}{{ loop.cycle('a', 'b') }}"
      "{{ '.' if loop.last else ',' }}{% endfor %}"), "1/4a,2/4b,3/4a,4/4b."),
    ("{% for m in messages if m.role == 'user' %}{{ m.content ~ '|' ~ loop.revindex }} {% endfor %}", "Hi|2 2+2?|1 "),
    (("{% for x in [[1, [2]], [3]] recursive %}{% if x is iterable %}({{ loop(x) }}){% else %}{{ x }}{% endif %}"
      "{% endfor %}"), "(1(2))(3)"),
    (("{% for i in range(3) %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% else %}empty{% endfor %}"
      "{% for i in [] %}x{% else %}empty{% endfor %}"), "02empty"),
    (("{{ messages | map(attribute='role') | join(', ') }}|{{ 'a\nb' | indent(2) }}|{{ '%03d' % 7 }}"
      "|{{ 'x'.center(5) ~ '.' }}|{{ [1] + [2] }}"), "system, user, assistant, user|a\n  b|007|  x  .|[1, 2]"),
    # large numbers are not sizes
    (("{{ '{} {}'.format(10 ** 9, nothing | default(10 ** 10)) }}|{{ '%d' % 10 ** 12 }}|{{ '{:>{}}'.format(1, 3) }}"
      "|{{ '{:.2f}'.format(2 / 3) }}"), "1000000000 10000000000|1000000000000|  1|0.67"),
    ("{{ messages[1] | tojson(indent=2) }}|{{ 'a b c' | wordwrap(2) }}",
     '{\n  "role": "user",\n  "content": "Hi"\n}|a\nb\nc'),
])
def test_bounds_leave_real_templates_alone(src, expected):
    assert ChatTemplate(src).render(MESSAGES) == expected


def test_gemma_template_renders_as_before():
    t = ChatTemplate(BUILTIN_TEMPLATES["gemma"], bos_token="<bos>")
    assert t.render(MESSAGES) == ("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
                                  "Hello!<end_of_turn>\n<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n")


def test_run_with_a_hanging_template_fails_fast(tiny_path, tmp_path):
    t = rewrite_gguf(tiny_path, tmp_path / "hang.gguf", kv={"tokenizer.chat_template": NESTED_LOOPS})
    r = llmlite("run", t, "-p", "Hi", "-n", "2", timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "longer than 1 s" in lines[0], r.stderr
