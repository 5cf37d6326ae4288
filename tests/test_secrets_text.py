"""The random text of states and OIDC tokens: the alphabet the centres and apps accept, the length
asked for, and every character equally likely (a skew would make tokens guessable sooner)."""

from __future__ import annotations

import re
from collections import Counter

from common.secrets_text import ALPHABET, random_text


def test_random_text_is_letters_and_digits_of_the_length_asked():
    for length in (1, 43, 48, 500):
        assert re.fullmatch(rf"[A-Za-z0-9]{{{length}}}", random_text(length))
    assert len({random_text(43) for _ in range(1000)}) == 1000


def test_every_character_is_equally_likely():
    counts = Counter(random_text(124_000))
    expected = 124_000 / 62  # 2,000 each; one standard deviation is about 44
    assert set(counts) == set(ALPHABET)
    assert all(abs(n - expected) < 250 for n in counts.values()), counts.most_common(3) + counts.most_common()[-3:]
