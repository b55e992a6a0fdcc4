"""Generation options: one checked GenerationConfig, built from keyword options."""
import pytest

from llmlite.genconfig import DEFAULT_MAX_TOKENS, OPTION_NAMES, SAMPLING_KEYS, GenerationConfig


def test_defaults_are_todays():
    c = GenerationConfig()
    assert c.max_tokens == DEFAULT_MAX_TOKENS == 256
    assert (c.temperature, c.top_k, c.top_p, c.min_p, c.repeat_penalty, c.repeat_last_n, c.seed) == (None,) * 7
    assert (c.stop, c.lookup, c.draft_max, c.lookup_ngram, c.add_special, c.parse_special) == ((), False, 8, 3, True, True)


@pytest.mark.parametrize("name", ["temprature", "lookups", "max_new_tokens", "stats"])
def test_unknown_option_is_a_type_error_naming_it(name):
    with pytest.raises(TypeError) as e:
        GenerationConfig.from_options(**{name: 1})
    msg = str(e.value)
    assert repr(name) in msg and all(k in msg for k in OPTION_NAMES)


@pytest.mark.parametrize("opts, msg", [
    (dict(temperature=-1), "--temp must be >= 0 (got -1)"),
    (dict(top_k=-3), "--top-k must be >= 0 (got -3)"),
    (dict(top_p=2), "--top-p must be in (0, 1] (got 2)"),
    (dict(min_p=1.5), "--min-p must be in [0, 1] (got 1.5)"),
    (dict(repeat_penalty=0), "--repeat-penalty must be > 0 (got 0)"),
    (dict(draft_max=0), "--draft-max must be >= 1 (got 0)"),
])
def test_value_out_of_range_is_the_one_line_error(opts, msg):
    with pytest.raises(ValueError) as e:
        GenerationConfig.from_options(**opts)
    assert str(e.value) == msg


def test_stop_strings_and_sampling_names():
    assert GenerationConfig(stop=["</s>", "", "##"]).stop == ("</s>", "##")
    for name, (field, read) in SAMPLING_KEYS.items():
        assert field in OPTION_NAMES and read in (int, float), name
