"""Bodies of the ``/strings`` endpoints."""

from pydantic import BaseModel, Field

MAX_TEXT_LENGTH = 10_000


class TextIn(BaseModel):
    """A text to work on."""

    text: str = Field(max_length=MAX_TEXT_LENGTH, examples=["Was it a car or a cat I saw?"])


class TextResult(BaseModel):
    """A transformed text."""

    result: str


class CountResult(BaseModel):
    """Word and character counts."""

    words: int
    characters: int


class PalindromeResult(BaseModel):
    """Whether the text is a palindrome (ignoring case, spaces and punctuation)."""

    palindrome: bool
