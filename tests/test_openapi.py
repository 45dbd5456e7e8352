"""``bot/openapi.json`` describes ``POST /crm/events`` as the code behaves: its examples pass the real validation."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any, get_args

import pytest
from flask import Flask
from slack_bolt import App

from bot.config import Alignment
from bot.crm_signature import HEADER, sign
from bot.deps import Dependencies
from bot.services.crm_schema import DATA_MODELS, DealContact, TouchKind, validate_events
from bot.web import OPENAPI, create_web_app
from handlers import crm as crm_handler

DOCUMENT: dict[str, Any] = json.loads(OPENAPI.read_text(encoding="utf-8"))
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
OPERATION: dict[str, Any] = DOCUMENT["paths"]["/crm/events"]["post"]
CONTENT: dict[str, Any] = OPERATION["requestBody"]["content"]


def resolve(ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node: Any = DOCUMENT
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def data_schema_of(event_type: str) -> dict[str, Any]:
    """The ``data`` schema the CloudEvent schema gives an event type."""
    [variant] = [v for v in SCHEMAS["CloudEvent"]["oneOf"] if v["properties"]["type"].get("const") == event_type]
    schema: dict[str, Any] = resolve(variant["properties"]["data"]["$ref"])
    return schema


def required_fields(model: Any) -> set[str]:
    return {name for name, info in model.model_fields.items() if info.is_required()}


# --- a valid OpenAPI 3.1 document ----------------------------------------------------------------


def test_it_is_an_openapi_3_1_document_whose_references_all_resolve() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    assert DOCUMENT["info"]["title"] and DOCUMENT["info"]["version"]
    assert set(DOCUMENT["paths"]) == {"/crm/events", "/openapi.json", "/healthz"}
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], f"{method} {path} has no responses"
            assert operation["operationId"]
    found = list(refs(DOCUMENT))
    assert len(found) > 20
    for ref in found:
        resolve(ref)
    try:
        from openapi_spec_validator import validate
    except ImportError:  # not a dependency: the structural checks above stand in for it
        return
    validate(DOCUMENT)


def test_the_signature_is_an_api_key_header_whose_recipe_signs_like_the_code() -> None:
    scheme = DOCUMENT["components"]["securitySchemes"]["alignbotSignature"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", HEADER)
    assert OPERATION["security"] == [{"alignbotSignature": []}]
    recipe = scheme["description"]
    assert '`"<t>.<raw body>"`' in recipe and "HMAC-SHA256" in recipe and "300 seconds" in recipe
    by_the_recipe = hmac.new(b"s3cret", b'1794850000.{"id": "1"}', hashlib.sha256).hexdigest()
    assert sign("s3cret", b'{"id": "1"}', 1794850000) == f"t=1794850000,v1={by_the_recipe}"


def test_the_three_content_modes_and_the_binary_headers_are_described() -> None:
    assert set(CONTENT) == {crm_handler.STRUCTURED, crm_handler.BATCH, "application/json"}
    assert resolve(CONTENT[crm_handler.BATCH]["schema"]["$ref"])["maxItems"] == crm_handler.MAX_BATCH
    headers = {p["name"] for p in OPERATION["parameters"] if p["in"] == "header"}
    assert headers == {"ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time"}
    envelope = SCHEMAS["CloudEvent"]
    assert envelope["required"] == ["specversion", "id", "source", "type", "time"]
    assert {v["properties"]["type"].get("const") for v in envelope["oneOf"]} - {None} == set(DATA_MODELS)


# --- the data schemas follow the models ----------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(DATA_MODELS))
def test_each_event_type_has_a_data_schema_with_the_models_fields(event_type: str) -> None:
    model = DATA_MODELS[event_type]
    schema = data_schema_of(event_type)

    assert set(schema["required"]) == required_fields(model)
    assert set(schema["properties"]) == set(model.model_fields)


def test_the_enums_formats_and_bounds_match_the_models() -> None:
    touch = data_schema_of("touch.recorded")["properties"]
    assert tuple(touch["kind"]["enum"]) == get_args(TouchKind)
    won = data_schema_of("deal.closed_won")["properties"]
    assert won["amount"]["minimum"] == 0
    assert won["currency"]["pattern"] == "^[A-Za-z]{3}$"
    assert won["owner_email"]["format"] == "email"
    contact = resolve(won["contacts"]["items"]["$ref"])
    assert set(contact["required"]) == required_fields(DealContact)
    assert set(contact["properties"]) == set(DealContact.model_fields)


# --- the examples pass the real validation --------------------------------------------------------


def test_every_event_type_has_a_structured_example_that_validates(alignment: Alignment) -> None:
    examples = CONTENT[crm_handler.STRUCTURED]["examples"]
    assert set(examples) == set(DATA_MODELS)
    for event_type, example in examples.items():
        checked = validate_events([example["value"]], stages=[s.name for s in alignment.stages])
        assert checked.problems == [], (event_type, checked.problems)
        [event] = checked.events
        assert event.type == event_type


def test_the_batch_and_binary_examples_validate_as_the_endpoint_reads_them(alignment: Alignment) -> None:
    stages = [s.name for s in alignment.stages]
    for example in CONTENT[crm_handler.BATCH]["examples"].values():
        body = json.dumps(example["value"]).encode()
        events = crm_handler.read_events(crm_handler.BATCH, {}, body)
        assert isinstance(events, list)
        checked = validate_events(events, stages=stages)
        assert checked.problems == [] and len(checked.events) == len(example["value"])

    headers = {p["name"]: p["example"] for p in OPERATION["parameters"]}
    [binary] = CONTENT["application/json"]["examples"].values()
    events = crm_handler.read_events("application/json", headers, json.dumps(binary["value"]).encode())
    assert isinstance(events, list)
    checked = validate_events(events, stages=stages)
    assert checked.problems == []
    assert [e.type for e in checked.events] == [headers["ce-type"]]


# --- the documented answers are the server's ------------------------------------------------------


def call(application: Flask, method: str, path: str, body: bytes = b"", **environ: str) -> tuple[str, Any]:
    """One WSGI request (Flask's test client); the status code and the decoded JSON body."""
    response = application.test_client().open(path, method=method, data=body, environ_overrides=environ)
    return str(response.status_code), json.loads(response.get_data())


def example_errors(status: str) -> set[str]:
    examples = OPERATION["responses"][status]["content"]["application/json"]["examples"]
    return {e["value"]["error"] for e in examples.values()}


def test_the_documented_answers_are_what_the_server_says(app: App, deps: Dependencies) -> None:
    unconfigured = create_web_app(deps, app)
    configured = create_web_app(deps, app, webhook_secrets=("s3cret",))

    served = call(unconfigured, "GET", "/openapi.json")
    assert served == ("200", DOCUMENT)
    assert call(unconfigured, "GET", "/healthz") == ("200", {"ok": True, "database": "ok"})

    status, answer = call(unconfigured, "POST", "/crm/events", b"[]")
    assert status == "503" and answer["error"] in example_errors("503")
    status, answer = call(configured, "POST", "/crm/events", b"x" * (crm_handler.MAX_BODY + 1))
    assert status == "413" and answer["error"] in example_errors("413")
    status, answer = call(configured, "POST", "/crm/events", b"[]", CONTENT_TYPE=crm_handler.BATCH)
    assert status == "401" and answer["error"] in example_errors("401")
    form = b"a=1"
    status, answer = call(
        configured,
        "POST",
        "/crm/events",
        form,
        CONTENT_TYPE="application/x-www-form-urlencoded",
        HTTP_X_ALIGNBOT_SIGNATURE=sign("s3cret", form),
    )
    assert status == "415" and answer["error"] in example_errors("415")

    batch = json.dumps(CONTENT[crm_handler.BATCH]["examples"]["journey"]["value"]).encode()
    signed = {"CONTENT_TYPE": crm_handler.BATCH, "HTTP_X_ALIGNBOT_SIGNATURE": sign("s3cret", batch)}
    status, answer = call(configured, "POST", "/crm/events", batch, **signed)
    accepted = OPERATION["responses"]["202"]["content"]["application/json"]["examples"]
    assert (status, answer) == ("202", accepted["stored"]["value"])
    assert call(configured, "POST", "/crm/events", batch, **signed) == ("202", accepted["resent"]["value"])
