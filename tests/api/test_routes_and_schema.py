"""Routing and the OpenAPI document: the raw upload takes one path segment and never another route's path, a 405
lists every method its path takes, and /openapi.json says what the server enforces and answers."""

from typing import Any

import httpx
import pytest

from tests.helpers import ApiClient

pytestmark = pytest.mark.anyio


async def test_put_on_a_files_links_path_is_405_not_an_upload_named_links(alice: ApiClient) -> None:
    file = await alice.upload(b"x")
    response = await alice.request("PUT", f"/api/v1/files/{file['id']}/links", content=b"not a file")
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "application/problem+json"
    names = [item["name"] for item in (await alice.request("GET", "/api/v1/files")).json()["items"]]
    assert names == ["hello.txt"]


@pytest.mark.parametrize(
    "path", ["/api/v1/files/a/b.txt", "/api/v1/files/..%2F..%2Fetc%2Fpasswd", "/api/v1/files/x/y/links"]
)
async def test_the_raw_upload_name_is_one_path_segment(alice: ApiClient, path: str) -> None:
    # The path is decoded before routing, so an encoded slash is a slash: such a name is another path.
    response = await alice.request("PUT", path, content=b"x")
    assert response.status_code == 404, response.text
    assert (await alice.request("GET", "/api/v1/files")).json()["items"] == []


async def test_a_path_in_a_multipart_filename_is_cleaned_to_its_last_part(alice: ApiClient) -> None:
    file = await alice.upload(b"x", name="../../etc/passwd")
    assert file["name"] == "passwd"


async def test_a_raw_upload_named_like_a_file_id_is_still_an_upload(alice: ApiClient) -> None:
    response = await alice.request("PUT", "/api/v1/files/links", content=b"x")
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "links"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/api/v1/links/abc", "DELETE, GET, PATCH"),
        ("PUT", "/api/v1/keys", "GET, POST"),
        ("POST", "/api/v1/keys/abc", "DELETE"),
        ("PATCH", "/api/v1/files/abc", "DELETE, GET, PUT"),
        ("DELETE", "/api/v1/files", "GET, POST"),
        ("GET", "/api/v1/files/abc/links", "POST"),
        ("POST", "/api/v1/links", "GET"),
        ("DELETE", "/ui/files", "POST"),
        ("GET", "/ui/sign-out", "POST"),
        ("POST", "/healthz", "GET"),
    ],
)
async def test_405_lists_every_method_the_path_takes(
    http: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await http.request(method, path)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allowed
    assert response.headers["content-type"] == "application/problem+json"


@pytest.fixture
async def schema(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operation(schema: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = schema["paths"][path][method]
    return operation


async def test_uploads_declare_their_bodies(schema: dict[str, Any]) -> None:
    multipart = _operation(schema, "post", "/api/v1/files")["requestBody"]
    assert multipart["required"] is True
    form = multipart["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"]
    assert form["properties"]["file"]["format"] == "binary"
    raw = _operation(schema, "put", "/api/v1/files/{file_id}")
    assert raw["requestBody"]["content"]["application/octet-stream"]["schema"]["format"] == "binary"
    (name,) = [p for p in raw["parameters"] if p["name"] == "file_id"]
    assert name["schema"]["pattern"] == "^[^/]+$"


@pytest.mark.parametrize(
    ("method", "path", "fields"),
    [
        ("post", "/api/v1/keys", {"name", "admin"}),
        ("post", "/api/v1/files/{file_id}/links", {"expires_in", "expires_at", "max_downloads", "note", "password"}),
        ("patch", "/api/v1/links/{link_id}", {"expires_in", "expires_at", "max_downloads", "note"}),
    ],
)
async def test_json_routes_declare_their_bodies(
    schema: dict[str, Any], method: str, path: str, fields: set[str]
) -> None:
    operation = _operation(schema, method, path)
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == fields
    assert {"413", "422"} <= set(operation["responses"])


async def test_constraints_match_what_the_server_enforces(schema: dict[str, Any], alice: ApiClient) -> None:
    key_name = _operation(schema, "post", "/api/v1/keys")["requestBody"]["content"]["application/json"]["schema"]
    assert key_name["properties"]["name"] == {"type": "string", "minLength": 1, "maxLength": 200, "title": "Name"}
    link = _operation(schema, "post", "/api/v1/files/{file_id}/links")["requestBody"]["content"]["application/json"]
    assert link["schema"]["properties"]["note"]["anyOf"][0] == {"type": "string", "maxLength": 1000}
    file = await alice.upload(b"x")
    for note, status in [("n" * 1000, 201), ("n" * 1001, 422)]:
        answer = await alice.request("POST", f"/api/v1/files/{file['id']}/links", json={"note": note})
        assert answer.status_code == status, answer.text


async def test_every_api_route_documents_what_it_can_answer(schema: dict[str, Any]) -> None:
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert {"401", "503"} <= statuses, (method, path, statuses)
            if "parameters" in operation or "requestBody" in operation:
                assert "422" in statuses, (method, path, statuses)
    for method, path in [("post", "/api/v1/files"), ("put", "/api/v1/files/{file_id}")]:
        assert {"400", "401", "413", "415", "422", "503", "507"} <= set(_operation(schema, method, path)["responses"])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "k", "admin": 0}, 422),  # 0 is no boolean: the schema says boolean
        ({"name": "k", "admin": "true"}, 422),
        ({"name": 5}, 422),
        ({"name": "k", "admin": True}, 201),
    ],
)
async def test_json_bodies_are_typed_as_the_schema_says(admin: ApiClient, body: dict[str, Any], status: int) -> None:
    response = await admin.request("POST", "/api/v1/keys", json=body)
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"expires_in": 600.0}, 201),  # a number with no fraction is an integer in JSON Schema
        ({"max_downloads": 2e0}, 201),
        ({"expires_in": "600"}, 422),
        ({"expires_in": 600.5}, 422),
        ({"expires_in": 60, "expires_at": "2100-01-01T00:00:00Z"}, 422),
        ({"expires_in": 60, "expires_at": None}, 201),
    ],
)
async def test_link_bodies_follow_the_documented_schema(alice: ApiClient, body: dict[str, Any], status: int) -> None:
    file = await alice.upload(b"x")
    response = await alice.request("POST", f"/api/v1/files/{file['id']}/links", json=body)
    assert response.status_code == status, response.text


async def test_the_schema_says_one_expiry_at_most(schema: dict[str, Any]) -> None:
    for method, path in [("post", "/api/v1/files/{file_id}/links"), ("patch", "/api/v1/links/{link_id}")]:
        body = _operation(schema, method, path)["requestBody"]["content"]["application/json"]["schema"]
        assert body["not"]["required"] == ["expires_in", "expires_at"]
