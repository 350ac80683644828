"""``POST /strings/...``: string transformations and inspections. Thin: the logic is in ``string_service``."""

from fastapi import APIRouter

from app.model.strings import CountResult, PalindromeResult, TextIn, TextResult
from app.service import string_service

router = APIRouter(prefix="/strings", tags=["strings"])


@router.post("/reverse", response_model=TextResult, summary="Reverse the text")
def reverse(body: TextIn) -> TextResult:
    return TextResult(result=string_service.reverse(body.text))


@router.post("/upper", response_model=TextResult, summary="Upper-case the text")
def upper(body: TextIn) -> TextResult:
    return TextResult(result=string_service.upper(body.text))


@router.post("/lower", response_model=TextResult, summary="Lower-case the text")
def lower(body: TextIn) -> TextResult:
    return TextResult(result=string_service.lower(body.text))


@router.post("/count", response_model=CountResult, summary="Count words and characters")
def count(body: TextIn) -> CountResult:
    return CountResult(
        words=string_service.word_count(body.text),
        characters=string_service.character_count(body.text),
    )


@router.post("/palindrome", response_model=PalindromeResult, summary="Check for a palindrome")
def palindrome(body: TextIn) -> PalindromeResult:
    return PalindromeResult(palindrome=string_service.is_palindrome(body.text))
