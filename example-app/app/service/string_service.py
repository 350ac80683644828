"""Pure string operations behind the ``/strings`` routes."""


def reverse(text: str) -> str:
    """The text backwards, character by character."""
    return text[::-1]


def upper(text: str) -> str:
    """The text in upper case."""
    return text.upper()


def lower(text: str) -> str:
    """The text in lower case."""
    return text.lower()


def word_count(text: str) -> int:
    """The number of whitespace-separated words."""
    return len(text.split())


def character_count(text: str) -> int:
    """The number of characters (Unicode code points), whitespace included."""
    return len(text)


def is_palindrome(text: str) -> bool:
    """Whether the text reads the same backwards, ignoring case and anything but letters and digits.

    A text with no letters or digits at all is not a palindrome.
    """
    letters = [c.casefold() for c in text if c.isalnum()]
    return bool(letters) and letters == letters[::-1]
