"""Pre-tokenizers: the regex lists that split text into words before BPE merges
them, as llama.cpp writes them for each tokenizer.ggml.pre name, their one-regex
twins, and how they run on Python's re, with the Unicode categories and
whitespace their classes stand for."""
from __future__ import annotations

import bisect
import re
from itertools import accumulate, chain
from typing import Iterable, Sequence

from llmlite.errors import TokenizerError


# ---- Unicode categories and whitespace ---------------------------------------------
# The code point categories of llama.cpp's src/unicode-data.cpp (Unicode 15.1;
# Python's unicodedata is older and differs on thousands of code points), as
# runs from U+0000: a category letter (C control, L letter, M mark, N number,
# P punctuation, S symbol, Z separator, U undefined) then the run length in
# base 36.
_CATEGORY_RUNS = (
    "CwZ1P3S1P6S1P4NaP2S3P2LqP3S1P1S1LqP1S1P1S1CxZ1P1S5P1S2L1P1S1C1S4N2S1L1P2S1N1L1P1N3P1LnS1LvS1LcqS"
    "4LcSeL5S7L1S1L1ShM34L5S1L2U2L4P1L1U4S2L1P1L3U1L1U1LkU1L2bS1L3vS1M7L4mU1L12U2L1P6L15P2U2S3U1M19P1"
    "M1P1M2P1M2P1M1U8LrU4L4P2UbC6S3P2S1P2S2MbP1C1P3L17MlNaP4L2M1L2rP1L1M7C1S1M6L2M2S1M4L2NaL3S2L1PeU1"
    "C1L1M1LuMrU2L2hMbL1UeNaLxM9L2S1P3L1U2M1S2LmM4L1M9L1M3L1M5U2PfU1LpM3U2P1U1LbU5LoS1L6U1C2U6M8L16Mo"
    "C1MxL1iM3L1MiL1M7LaM2P2NaP1LgM3U1L8U2L2U2LmU1L7U1L1U3L4U2M1L1M7U2M2U2M3L1U8M1U4L2U1L3M2U2NaL2S2N"
    "6S2L1P1M1U2M3U1L6U4L2U2LmU1L7U1L2U1L2U1L2U2M1U1M5U4M2U2M3U3M1U7L4U1L1U7NaM2L3M1P1UaM3U1L9U1L3U1L"
    "mU1L7U1L2U1L5U2M1L1M8U1M3U1M3U2L1UfL2M2U2NaP1S1U7L1M6U1M3U1L8U2L2U2LmU1L7U1L2U1L5U2M1L1M7U2M2U2M"
    "3U7M3U4L2U1L3M2U2NaS1L1N6UaM1L1U1L6U3L3U1L4U3L2U1L1U1L2U3L2U3L3U3LcU4M5U3M3U1M4U2L1U6M1UeNdS8U5M"
    "5L8U1L3U1LnU1LgU2M1L1M7U1M3U1M4U7M2U1L3U2L1U2L2M2U2NaU7P1N7S1L1M3P1L8U1L3U1LnU1LaU1L5U2M1L1M7U1M"
    "3U1M4U7M2U6L2U1L2M2U2NaU1L2M1UcM4L9U1L3U1L15M2L1M7U1M3U1M4L1S1U4L3M1N7L3M2U2NjS1L6U1M3U1LiU3LoU1"
    "L9U1L1U2L7U3M1U4M6U1M1U1M8U6NaU2M2P1UcL1cM1L2M7U4S1L7M8P1NaP2U11L2U1L1U1L5U1LoU1L1U1LaM1L2M9L1U2"
    "L5U1L1U1M7U1NaU2L4UwL1S3PfS1P1S3M2S6NkS1M1S1M1S1M1P4M2L8U1L10U4MkP1M2L5MbU1M10U1S8M1S6U1S2P5S4P2"
    "U11L17MkL1NaP6L6M4L4M3L1M3L2M7L3M4LdMcL1M1NaM4S2L12U1L1U5L1U2L17P1L99U1L4U2L7U1L1U1L4U2L15U1L4U2"
    "LxU1L4U2L7U1L1U1L4U2LfU1L1lU1L4U2L1vU2M3P9NkU3LgSaU6L2eU2L6U2P1Lh8S1P1LhZ1LqP2U3L23P3N3L8U7LiM4U"
    "9LjM3P2U9LiM2UcLdU1L3U1M2UcL1gMwP3L1P3S1L1M1U2NaU6NaU6PbM3C1M1NaU6L2hU7L5M2LyM1L1U5L1yUaLvU1McU4"
    "McU4S1U3P2NaLuU2L5UbL18U4LqU6NbU3SyLnM5U2P2L1hMaU1MtU2M1NaU6NaU6P7L1P6U2MvU1dM5L1bMhL8U3NaP7SaM9"
    "S9P2U1M3LuMdL2NaL18MeU8P4L10MkU3P5NaU3L3NaL10P2L9U7L17U2L3P8U8M3P1MlL4M1L6M1L2M3L1U5L5cM1sL7qU2L"
    "6U2L12U2L6U2L8U1L1U1L1U1L1U1LvU2L1hU1L7S1L1S3L3U1L7S3L4U2L6U1S3LdS3U2L3U1L7S2U1ZbC5PoZ2C5Z1PkS1P"
    "dS1PcZ1C5U1CaN1L1U2N6S3P2L1NaS3P2U1LdU3SxUfMxUfS2L1S4L1S2LaS1L1S3L5S6L1S1L1S1L1S1L4S1LbS2L4S5L5S"
    "4L1S1N1fL2N5S2U4SagP4StP2S70UpSbUlN1oS26NmSh4PeNuS1dP2SvPaSb7PmS1rP4SwP2SaeU2SwU1S2xL6dS6L4M3L2U"
    "5P4N1P2L12U1L1U5L1U2L1kU7L1P1UeM1LnU9L7U1L7U1L7U1L7U1L7U1L7U1L7U1L7U1MwP1bL1PwS2PcUySqU1S2hUcS5y"
    "UqSgZ1P3S1L2N1PaS2PcS1N9M6P1L5S2N3L2P1S2U1L2eU2M2S2L3P1L2iP1L4U5L17U1L2mU1S2N4SaLwS10UbS1LgSvU1N"
    "aSuN8S1NfSwNaS13NfS8wL534S1sLh3hU3S1jU9L1aP2L7hP3LgNaL2UkL1bM4P1MaP1LvM2L1yNaM2P6U8SnL9S2L2vS2L1"
    "sU5L2U1L1U1L5UoLgM1L3M1L4M1LnM5S4M1U3N6S4U6L1gP4U8M2L1eMiU8P2NaU6MiL6P3L1P1L2M1NaLsM8P2LnMdUbP1L"
    "tU3M4L1bMePdU1L1NaU4P2L5M1LaNaL5U1L15MeU9L3M1L8M2U2NaU2P4LnS3L1M3L1eM1L1M3L2M2L5M2L1M1L1UoL3P2Lb"
    "M5P2L3M2UaL6U2L6U2L6U9L7U1L7U1L17S1LeS2U4L37M8P1M2U2NaU6L8mcUcLnU4L1dU4C6ioLa6U2L2yU12L7UcL5U5L1"
    "M1LaS1LdU1L5U1L1U1L2U1L2U1L30ShUgLa3P2SgL1sU2L1iU7S1UwLcS4MgPaU6MgPzU1PeS1P1S3U1P1S1P2U4L5U1L3rU"
    "2C1U1P3S1P6S1P4NaP2S3P2LqP3S1P1S1LqP1S1P1S1P7L2hU3L6U2L6U2L6U2L3U3S7U1S7UaC3S2U2LcU1LqU1LjU1L2U1"
    "LfU2LeUyL3fU5P3U4N19U3S9N1lShN2S3U1SdU3S1U1bS19M1U3mLtU3L1dUfM1NrU4LwN4U9LkN1L8N1U5L12M5U5LuU1P1"
    "L10U4L8P1N5U16L4eU2NaU6L10U4L10U4L14U8L1gUbP1LbU1LfU1L7U1L2U1LbU1LfU1L7U1L2U1vL8nU9LmUaL8UoL6U1L"
    "16U1L9U1xL6U2L1U1L18U1L2U3L1U2LnU1P1N8LnS2N7LvU8N9U1cLjU1L2U5N5LmN6U3P1LqU5P1U1sL1kU4N2L2NgU2N1a"
    "L1M3U1M2U5M4L4U1L3U1LtU2M3U4M1N9U7P9U7LtN2P1LtN3UwL8S1LsM2U4N5P7U9L1iU3P7LmU2N8LjU5N8LiU7P4UcN7U"
    "28L21U1jL1fUdL1fU7N6L10M4U8NaU86NvU1L16U1M2P1U2L2U23M3LtNaL1U8LmMbN4P5UmLiM4P4U12LlN7UkLnU9M3L1h"
    "MfP7U4NuM1L2M2L1U9M4L19MbP2C1P4M1UaC1U2LpU7NaU6M3L10MeU1NaP4L1M2L1U8LzM1P2L1U9M3L1cMeL4P4M4P1M2N"
    "aL1P1L1P3U1NkUbLiU1LpMcP6M1L2M1U1qL7U1L1U1L4U1LfU1LaP1U6L1bMcU5NaU6M4U1L8U2L2U2LmU1L7U1L2U1L5U1M"
    "2L1M7U2M2U2M3U2L1U6M1U5L5M2U2M7U3M5U3vL1hMiL4P5NaP2U1P1M1L3UuL1cMkL2P1L1U8NaU4mL1bM7U2M9PnL4M2Uy"
    "L1cMhP3L1UbNaU6PdUjL17MdL1P1U6NaU1iLrU2MfU4NcP3S1L7U55L18MfP1U2sL1sNjUcL8U2L1U2L8U1L2U1LoM6U1M2U"
    "2M4L1M1L1M2P3U9NaU1yL8U2L13M7U2M7L1P1L1M1UrL1MaL14M7L1M4P8M1U8L1MbL1aMgP3L1P5UdL21U7PaU6uL9U1L11"
    "M8U1M8L1P5UaNtU3P2LuU2MmU1MeU21L7U1L2U1L12M6U3M1U1M2U1M7L1M1U8NaU6L6U1L2U1LwM5U1M2U1M5L1U7NaU8mL"
    "jM4P2U7M2L1M1LdU1LyM7U3M5PdNaU2eL1UfNlStUdP1LpmU2uN33U1P5UbL5gU218L2pP2UdLtsCgM1L6MfU33eLg7U6ntL"
    "ftU7LvU1NaU4P2L27U1NaU6LuU2M5P1UaL1cM7P5S4L4P1S1UaNaU1N7U1LlU5LjUj4L1sNnP4U2tL23U4M1L1M1jU7M4LdU"
    "1sL2P1L1M1UbM2UeL4qgU8LyeU16L9U6w7L4U1L7U1L2U1L83UfL1UtL3U2L1UeL4U8Lb0U1s4L2zU5LdU3L9U7LaU2S1M2P"
    "1C4U3mkM1aU2MnU9S38U1oS6uUaS13U2S1oM5S3M6C8M8S2M7SuM4S1pUlS1uM3S1U3eNkUcNkUcS2fU9NpU3rL2dU1L1zU1"
    "L2U2L1U2L2U2L4U1LcU1L1U1L7U1L1tU1L4U2L8U1L7U1LsU1L4U1L5U1L1U3L7U1L9gU2LpS1LpS1LvS1LpS1LvS1LpS1Lv"
    "S1LpS1LvS1LpS1L8U2N1eSe8M1jS4M1eS8M1SeM1S2P5UfM5U1MfUuoLvU6L6U5xM7U1MhU2M7U1M2U1M5U5L1qUxM1U34L1"
    "9U3M7L7U2NaU4L1S1U8wLuM1UhL18M4NaU5S1UcwLsM4NaUkmL7U1L4U1L2U1LfU1L5hU2N9M7U15L1wM7L1U4NaU4P2UltN"
    "1nS1N3S1N4U24N19S1NfU5eL4U1LrU1L2U1L1U2L1U1LaU1L4U1L1U1L1U6L1U4L1U1L1U1L1U1L3U1L2U1L1U2L1U1L1U1L"
    "1U1L1U1L1U1L2U1L1U2L4U1L7U1L4U1L4U1L1U1LaU1LhU5L3U1L5U1LhU1gS2U7iS18U4S2sUcSfU2SfU1SfU1S11UaNdS4"
    "hU1kStUdS18U4S9U7S2UeS6U4aSrcU4ShU3SdU3S3bU4S2nU6ScU4S1UfScU4S1kU8SaU6S14U8SuU2S2U26S9gUcSeU2SdU"
    "3S9U7S1aU1S7U8SeU4S9U7S9U7S43U1S1jU11NaUsmLwyoUwL37eU6L66U2L4g2UeL5rlUfLhaU1wiLf2U15uL3t7U5L38gU"
    "f975C1UuC2oU3kM6oU1e6oC1ekeU2C1ekeU2"
)

# whitespace (regex \s) for the pre-tokenizers: exactly these code points
_WHITESPACE = (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
               0x2028, 0x2029, 0x202F, 0x205F, 0x3000)

_CATEGORIES: dict[str, list[tuple[int, int]]] | None = None  # letter -> [(first, last)], built on first use
_CAT_STARTS: list[int] = []   # run starts, and their letters, for category()
_CAT_LETTERS: str = ""


def _category_ranges() -> dict[str, list[tuple[int, int]]]:
    global _CATEGORIES, _CAT_STARTS, _CAT_LETTERS
    if _CATEGORIES is None:
        cats: dict[str, list[tuple[int, int]]] = {}
        starts: list[int] = []
        letters: list[str] = []
        pos = 0
        for c, n in re.findall(r"([A-Z])([0-9a-z]+)", "".join(_CATEGORY_RUNS)):
            k = int(n, 36)
            cats.setdefault(c, []).append((pos, pos + k - 1))
            starts.append(pos)
            letters.append(c)
            pos += k
        if pos != 0x110000:
            raise AssertionError("unicode category table is corrupt")
        _CAT_STARTS, _CAT_LETTERS = starts, "".join(letters)
        _CATEGORIES = cats
    return _CATEGORIES


def category(cp: int) -> str:
    """The category letter (C L M N P S Z; U undefined) of a code point, per llama.cpp's table."""
    _category_ranges()
    if not 0 <= cp < 0x110000:
        return "U"
    return _CAT_LETTERS[bisect.bisect_right(_CAT_STARTS, cp) - 1]


def _esc(cp: int) -> str:
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"


def _class_text(ranges: Iterable[tuple[int, int]]) -> str:
    return "".join(_esc(a) if a == b else _esc(a) + "-" + _esc(b) for a, b in ranges)


_WS_CLASS = _class_text((c, c) for c in _WHITESPACE)
_WS_CLASS_ASCII = _class_text((c, c) for c in _WHITESPACE if c < 0x80)
_WS_TO_VT = {c: 0x0B for c in _WHITESPACE if c >= 128}

# Python's re tests a class's code points above U+FFFF one range at a time,
# which makes the letter class slow. So the category regexes run on a copy of
# the text where each code point above U+FFFF (and each lone surrogate) is
# replaced by a stand-in surrogate for its category; the classes hold only
# BMP ranges plus their stand-in. (No whitespace lies above U+FFFF.)
_STANDIN = {"L": 0xD800, "N": 0xD801, "P": 0xD802, "M": 0xD803, "S": 0xD804}
_STANDIN_OTHER = 0xD805
# a pattern text, left to re's cache to compile on first use: ASCII text never needs it
_NEEDS_STANDIN = "[\ud800-\udfff\U00010000-\U0010ffff]"


def _standin(m: re.Match) -> str:
    return chr(_STANDIN.get(category(ord(m.group())), _STANDIN_OTHER))


def standin_text(s: str) -> str:
    """s, or a copy of it with the stand-ins in (when it holds a code point that needs one)."""
    if s.isascii() or not re.search(_NEEDS_STANDIN, s):
        return s
    return re.sub(_NEEDS_STANDIN, _standin, s)


def _cat_class(cat: str, ascii_only: bool = False) -> str:
    """Class text for \\p{cat} on the stand-in text (its ASCII part only with ascii_only)."""
    top = 0x7F if ascii_only else 0xFFFF
    ranges = [(a, min(b, top)) for a, b in _category_ranges().get(cat, ()) if a <= top]
    return _class_text(ranges) + ("" if ascii_only else _esc(_STANDIN[cat]))


# ---- the regex lists, per tokenizer.ggml.pre name ----------------------------------
# Each list is the one llama.cpp's BPE tokenizer uses for the name, in its regex
# syntax (\p{X} a Unicode category, every \p{L?} the whole of L; ECMAScript
# otherwise). The regexes apply in order, each re-splitting every piece the ones
# before it made (split() below); _translate() turns each into a Python pattern.

_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_CI = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_LLAMA3 = _CI + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_QWEN2 = _LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
_DEEPSEEK_CJK = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
_DEEPSEEK_LLM_LETTERS = (
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af"
    "\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5"
    "\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba"
    "\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45"
    "\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe"
    "\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc"
    "\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
    "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3"
    "\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06"
    "\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3"
    "\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df"
    "\U0001e900-\U0001e943]+"
)
_TEKKEN_L1 = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+"
_TEKKEN_L2 = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*"
_TEKKEN = _TEKKEN_L1 + "|" + _TEKKEN_L2 + r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_GPT4O = (_TEKKEN_L1 + _CI + "?|" + _TEKKEN_L2 + _CI + r"?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_BLOOM = " ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+"

# name -> (regex list, settings). Settings: add_bos, ignore_merges, clean_spaces
# (default on for BPE), no_bos (the default BOS id becomes none).
PRE_TOKENIZERS: dict[str, tuple[tuple[str, ...], dict[str, bool]]] = {}


def _pre(names: str, regexes: Sequence[str], **settings: bool) -> None:
    for name in names.split():
        PRE_TOKENIZERS[name] = (tuple(regexes), dict(settings))


_pre("default", [r"[\p{P}\$\+<=>\^~\|]+", _GPT2, r"\p{N}+", "[0-9][0-9][0-9]"])
_pre("llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2 jina-v5-nano", [_LLAMA3],
     ignore_merges=True, add_bos=True)
_pre("smollm command-r", [r"\p{N}", _GPT2], clean_spaces=False)
_pre("starcoder refact codeshell exaone minerva-7b mellum2", [r"\p{N}", _GPT2])
_pre("gpt-2 phi-2 jina-es jina-de jina-v2-es jina-v2-de jina-v1-en jina-v2-code roberta-bpe gigachat "
     "a.x-4.0 mellum modern-bert exaone4 mpt olmo jais", [_GPT2])
_pre("trillion granite-docling", [_GPT2], clean_spaces=False)
_pre("qwen2 deepseek-r1-qwen kormo f2llmv2 hunyuan solar-open", [_QWEN2], clean_spaces=False)
_pre("stablelm2 megrez", [_QWEN2])
_pre("dbrx smaug-bpe", [_LLAMA3])
_pre("chatglm-bpe", [_LLAMA3], no_bos=True)
_pre("glm4 glm5", [_LLAMA3], no_bos=True, ignore_merges=True)
_pre("deepseek-coder", [r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", _DEEPSEEK_CJK, r"\p{N}"], clean_spaces=False)
_pre("deepseek-llm", [r"[\r\n]", _DEEPSEEK_LLM_LETTERS,
                      "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+", r"\s+$",
                      _DEEPSEEK_CJK, r"\p{N}+"], clean_spaces=False)
_pre("deepseek-v3 hunyuan-dense joyai-llm hy_v4",
     [r"\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
      r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"""
      r"""| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""], clean_spaces=False)
_pre("falcon", [r"[\p{P}\$\+<=>\^~\|`]+", _GPT2, "[0-9][0-9][0-9]"])
_pre("bloom gpt3-finnish", [_BLOOM])
_pre("poro-chat", [_BLOOM], clean_spaces=False)
_pre("viking", [_BLOOM, r"\p{N}"], clean_spaces=False)
_pre("tekken", [_TEKKEN], ignore_merges=True, add_bos=True, clean_spaces=False)
_pre("gpt-4o llama4 kanana2 talkie minimax-m2", [_GPT4O], clean_spaces=False)
_pre("seed-coder", [_CI + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"],
     clean_spaces=False)
_pre("bailingmoe bailingmoe2 llada-moe",
     [r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
      r"|\s*[\r\n]|\s+(?!\S)|\s+"], clean_spaces=False)
_pre("chameleon", [r"<sentinel:[0-9]+>", r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", r"([\t\n]|    |  )", r"\p{N}",
                   r"[\p{P}!-/:-@\[-`{-~]", _GPT2], add_bos=True, clean_spaces=False)
_pre("superbpe", [r"\p{N}+", r"(?=(\d{3})+(?!\d))"], clean_spaces=False)


# Regex lists that one regex splits the same way, matched with findall: the
# words are its matches, plus (last alternative) any code point no alternative
# takes, which llama.cpp's splitters also make a word of its own. For these
# regexes an unmatched stretch is never longer than one code point. The
# \p{N}-then-GPT2 list (smollm, starcoder, ...) becomes one regex whose digits
# are single words that nothing else crosses.
_ANY = "|(?s:.)"
_FAST = {
    (_GPT2,): _GPT2 + _ANY,
    (_LLAMA3,): _LLAMA3 + _ANY,
    (_QWEN2,): _QWEN2 + _ANY,
    (r"\p{N}", _GPT2): _GPT2.replace(r" ?\p{N}+", r"\p{N}").replace(r"\s+(?!\S)", r"\s+(?![^\s\p{N}])") + _ANY,
}


def _translate(rx: str, ascii_only: bool = False) -> tuple[str, bool]:
    r"""llama.cpp regex text -> (Python pattern, runs on the text itself).

    A regex with \p{..} classes is matched by llama.cpp on a copy of the text
    where each non-ASCII code point stands for its category; the same result
    comes from matching the text itself with each \p{X} spelled out as the
    category's ranges and \s / \S as the whitespace set (the regex is ASCII).
    A regex without them (std::wregex) runs on the text with non-ASCII
    whitespace turned into U+000B; then \s stays ECMAScript's (re.ASCII).

    ascii_only keeps only the ASCII part of each \p{..} and \s class: a pattern
    that matches ASCII text exactly as the full one does (a class, negated or
    not, tests an ASCII character against its ASCII part only), and compiles
    several times faster."""
    ws = _WS_CLASS_ASCII if ascii_only else _WS_CLASS
    uses_cat = "\\p{" in rx
    out: list[str] = []
    in_class = False
    i, n = 0, len(rx)
    while i < n:
        ch = rx[i]
        if ch == "\\" and i + 1 < n:
            nxt = rx[i + 1]
            if nxt == "p" and rx.startswith("{", i + 2):
                j = rx.index("}", i)
                name = rx[i + 3:j]
                if name not in ("N", "L", "P", "M", "S", "Lu", "Ll", "Lt", "Lm", "Lo"):
                    raise TokenizerError(f"unsupported regex class \\p{{{name}}} in a pre-tokenizer")
                body = _cat_class(name[0], ascii_only)   # every \p{L?} is the whole L class
                out.append(body if in_class else "[" + body + "]" if body else "(?!)")
                i = j + 1
                continue
            if uses_cat and nxt in "sS":
                if nxt == "s":
                    out.append(ws if in_class else "[" + ws + "]")
                elif in_class:
                    raise TokenizerError("unsupported \\S inside a class in a pre-tokenizer regex")
                else:
                    out.append("[^" + ws + "]")
                i += 2
                continue
            out.append(rx[i:i + 2])
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
            elif ch == "[":
                ch = "\\["  # a literal [ inside a class
            out.append(ch)
        elif ch == "[":
            in_class = True
            out.append(ch)
            if rx.startswith("^", i + 1):
                out.append("^")
                i += 1
        elif ch == "$":
            out.append(r"\Z")  # ECMAScript $ (no multiline) is the end of the input only
        else:
            out.append(ch)
        i += 1
    return "".join(out), uses_cat


def _compile(rx: str, ascii_only: bool = False) -> tuple[re.Pattern, bool]:
    pat, on_text = _translate(rx, ascii_only)
    return re.compile(pat, re.ASCII), on_text


class _FastSplit:
    """A one-regex split (_FAST), compiled on first use: ASCII text (most prompts)
    is matched with the ASCII-only pattern, which compiles in a fraction of the
    time the full one takes (~7 ms for the full GPT-2 pattern)."""

    def __init__(self, rx: str):
        self.rx = rx
        self._full: re.Pattern | None = None
        self._ascii: re.Pattern | None = None

    def findall(self, t: str) -> list[str]:
        if t.isascii():
            if self._ascii is None:
                self._ascii = _compile(self.rx, ascii_only=True)[0]
            return self._ascii.findall(t)
        if self._full is None:
            self._full = _compile(self.rx)[0]
        return self._full.findall(t)


class _LazyRegexes:
    """A pre-tokenizer's regex list, compiled on first iteration: [(pattern, on_text)]."""

    def __init__(self, regexes: Sequence[str]):
        self.regexes = regexes
        self._compiled: list[tuple[re.Pattern, bool]] | None = None

    def __iter__(self):
        if self._compiled is None:
            self._compiled = [_compile(rx) for rx in self.regexes]
        return iter(self._compiled)


def split(s: str, regexes: Iterable[tuple[re.Pattern, bool]], fast: _FastSplit | None,
          generic: bool = False) -> list[str]:
    """Split s into words with a pre-tokenizer's regex list (llama.cpp's unicode_regex_split):
    with its one-regex twin (fast) unless generic, else regex by regex."""
    n = len(s)
    if n == 0:
        return []
    t = standin_text(s)
    if fast is not None and not generic:
        words = fast.findall(t)
        if t is s:
            return words
        ends = list(accumulate(map(len, words)))
        return [s[a:b] for a, b in zip(chain((0,), ends), ends)]
    wsn = None
    spans: list[tuple[int, int]] = [(0, n)]
    for pat, on_text in regexes:
        u = t if on_text else wsn if wsn is not None else (wsn := s.translate(_WS_TO_VT))
        new: list[tuple[int, int]] = []
        add = new.append
        for a, b in spans:
            pos = a
            for m in pat.finditer(u, a, b):
                ms, me = m.span()
                if ms > pos:
                    add((pos, ms))
                if me > ms:
                    add((ms, me))
                pos = me
            if pos < b:
                add((pos, b))
        spans = new
    return [s[a:b] for a, b in spans]


def pre_tokenizer(name: str | None) -> tuple[str, dict[str, bool], _LazyRegexes, _FastSplit | None]:
    """The pre-tokenizer tokenizer.ggml.pre names ("default" when absent): its name,
    settings, regex list (compiled on first use) and one-regex twin, if it has one."""
    name = name if name is not None else "default"
    if name not in PRE_TOKENIZERS:
        raise TokenizerError(f"unknown or unsupported pre-tokenizer '{name}' (tokenizer.ggml.pre)")
    regexes, settings = PRE_TOKENIZERS[name]
    return name, settings, _LazyRegexes(regexes), _FastSplit(_FAST[regexes]) if regexes in _FAST else None
