from textkit import camel_case, snake_case


def test_snake_case_splits_on_spaces_hyphens_and_camel_humps():
    assert snake_case("HTTP Response-code") == "http_response_code"
    assert snake_case("userId") == "user_id"
    assert snake_case("already_snake") == "already_snake"


def test_camel_case():
    assert camel_case("user id") == "userId"
    assert camel_case("HTTP_response") == "httpResponse"


def test_camel_case_empty():
    assert camel_case("  ") == ""
