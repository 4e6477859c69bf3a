"""REST's Content-Disposition for download names (project names are free text)."""

from __future__ import annotations

import urllib.parse

from mobiletrain.api.rest.httputil import attachment


def test_a_plain_ascii_name_is_sent_as_it_is() -> None:
    assert (
        attachment("digits-v3-float32.tflite") == 'attachment; filename="digits-v3-float32.tflite"'
    )


def test_other_names_get_an_ascii_stand_in_and_the_exact_name_in_filename_star() -> None:
    name = 'Café "fleurs" v2-v1-float32.tflite'
    value = attachment(name)
    plain, star = value.split("; ")[1:]
    # The stand-in has no quote, space or non-ASCII character that could break the header.
    assert plain == 'filename="Caf___fleurs__v2-v1-float32.tflite"'
    assert star.startswith("filename*=UTF-8''")
    assert urllib.parse.unquote(star.removeprefix("filename*=UTF-8''")) == name
    assert value.isascii() and "\n" not in value
