"""The pure logic, without HTTP."""

import pytest

from app.service import string_service


def test_reverse_handles_unicode():
    assert string_service.reverse("añb") == "bña"


def test_case():
    assert string_service.upper("straße") == "STRASSE"
    assert string_service.lower("ÀB") == "àb"


def test_counts():
    assert string_service.word_count("one  two\nthree") == 3
    assert string_service.word_count("   ") == 0
    assert string_service.character_count("añb c") == 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("racecar", True),
        ("A man, a plan, a canal: Panama!", True),
        ("No 'x' in Nixon", True),
        ("12321", True),
        ("a", True),
        ("ab", False),
        ("", False),
        ("?!", False),
    ],
)
def test_is_palindrome(text, expected):
    assert string_service.is_palindrome(text) is expected
