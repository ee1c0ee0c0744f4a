"""The OpenAPI 3.1 document of the storage server's API, served at ``GET /v1/openapi.json``.

Kept by hand, next to docs/api.md (the prose reference); a test checks that every route of the
app appears here. Built with small helpers so that each operation reads as one line of facts.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OPENAPI"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_BYTES = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_HEX32 = {"type": "string", "pattern": "^[0-9a-f]{32}$"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _op(
    summary: str,
    scopes: str,
    ok: dict[str, Any],
    errors: dict[str, str],
    *,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    public: bool = False,
) -> dict[str, Any]:
    responses: dict[str, Any] = dict(ok)
    if not public:
        errors = {"401": "missing, malformed, unknown or revoked credential", **errors}
    for code, text in errors.items():
        responses[code] = {"description": text, "content": _json(_ERROR)}
    op: dict[str, Any] = {
        "summary": summary,
        "description": f"Credential scopes: {scopes}.",
        "responses": responses,
    }
    if public:
        op["security"] = []
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    if params:
        op["parameters"] = params
    return op


def _path_param(name: str, pattern: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": pattern}}


_NAME = _path_param("name", "^[0-9a-f]{64}$")
_HOST = _path_param("host", "^[a-z0-9][a-z0-9._-]{0,62}$")
_BACKUP = _path_param("backup_id", "^[0-9a-f]{32}$")
_KEYRING_VERSION = _path_param("version", "^[1-9][0-9]{0,18}$")
_CREATED = {"type": "object", "properties": {"created": {"type": "boolean"}}}
_STORED_ENVELOPE = {
    "type": "object",
    "properties": {"backup_id": _HEX32, "generation": {"type": "integer"}, "created": {"type": "boolean"}},
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "opsbackup storage server",
        "version": "1",
        "description": "See docs/api.md. Every request, allowed or refused, is in the audit log.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            }
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/openapi.json": {
            "get": _op("This document", "none", {"200": {"description": "OpenAPI 3.1"}}, {}, public=True)
        },
        "/v1/objects": {
            "get": _op(
                "List the account's objects (name, size) in name order, a page at a time",
                "restore, admin",
                {
                    "200": {
                        "description": "one page; 'next' is the 'after' of the next page, or null",
                        "content": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "objects": {"type": "array", "items": {"type": "object"}},
                                    "next": {"type": ["string", "null"]},
                                },
                            }
                        ),
                    }
                },
                {
                    "400": "invalid 'after' or 'limit'",
                    "403": "scope not allowed (host credentials cannot list)",
                },
                params=[
                    {"name": "after", "in": "query", "required": False, "schema": _HEX64},
                    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"}},
                ],
            )
        },
        "/v1/objects/{name}": {
            "put": _op(
                "Upload an object whose name is the SHA-256 of its bytes (create-only, idempotent)",
                "host, admin",
                {
                    "201": {"description": "stored", "content": _json(_CREATED)},
                    "200": {"description": "already present; nothing changed", "content": _json(_CREATED)},
                },
                {
                    "400": "invalid object name, or the body does not hash to the name",
                    "403": "the credential's scope may not upload",
                    "413": "body larger than the server's object size limit",
                },
                body=_BYTES,
                params=[_NAME],
            ),
            "get": _op(
                "Download an object, or one byte range of it (Range: bytes=START-END)",
                "host, restore, admin",
                {
                    "200": {"description": "the object", "content": _BYTES},
                    "206": {"description": "the requested range", "content": _BYTES},
                },
                {
                    "400": "invalid object name or malformed Range",
                    "403": "scope not allowed",
                    "404": "no such object",
                    "416": "range starts past the end",
                },
                params=[_NAME],
            ),
            "head": _op(
                "Size of an object (Content-Length) without its bytes",
                "host, restore, admin",
                {"200": {"description": "present"}},
                {"400": "invalid object name", "403": "scope not allowed", "404": "no such object"},
                params=[_NAME],
            ),
        },
        "/v1/objects/query": {
            "post": _op(
                "Which of these objects does the account have? (at most 10000 names)",
                "host, restore, admin",
                {
                    "200": {
                        "description": "the subset present, sorted",
                        "content": _json({"type": "object", "properties": {"present": {"items": _HEX64}}}),
                    }
                },
                {"400": "malformed body or name", "403": "scope not allowed", "413": "too many names"},
                body=_json({"type": "object", "properties": {"names": {"type": "array", "items": _HEX64}}}),
            )
        },
        "/v1/manifests": {
            "get": _op(
                "List manifests (optionally ?host=HOST)",
                "host, restore, admin",
                {"200": {"description": '{"manifests": [{"host", "backup_id"}]}'}},
                {"400": "invalid host", "403": "scope not allowed"},
            )
        },
        "/v1/manifests/{host}/{backup_id}": {
            "put": _op(
                "Upload a signed manifest (create-only; verified against the keyring's host keys)",
                "host, admin",
                {"201": {"description": "stored"}, "200": {"description": "identical manifest present"}},
                {
                    "400": "invalid host or backup id, not a signed manifest, or a bad signature",
                    "403": "scope not allowed, or signer is not a current host key",
                    "409": "another manifest exists under this id, the account has no keyring, objects the "
                    "manifest names are not stored or are being deleted by a delete in progress "
                    "(X-Opsbackup-Missing-Objects; 'deleting' lists the latter), or the key envelope of "
                    "the backup or of one of its sources is not stored (upload it first)",
                    "413": "manifest too large",
                    "503": "ran past its deadline and stopped before storing; send it again",
                },
                body=_BYTES,
                params=[_HOST, _BACKUP],
            ),
            "get": _op(
                "Download a manifest",
                "host, restore, admin",
                {"200": {"description": "the signed manifest", "content": _BYTES}},
                {"400": "invalid host or backup id", "403": "scope not allowed", "404": "no such manifest"},
                params=[_HOST, _BACKUP],
            ),
        },
        "/v1/keyring": {
            "get": _op(
                "The account's newest root-signed keyring (header X-Opsbackup-Keyring-Version)",
                "host, restore, admin",
                {"200": {"description": "the signed keyring", "content": _BYTES}},
                {"404": "the account has no keyring yet"},
            ),
            "put": _op(
                "Upload the next keyring version, signed by the active root key of the current version",
                "admin",
                {"201": {"description": "stored"}, "200": {"description": "identical keyring present"}},
                {
                    "400": "not signed by the current version's active root key (the account's root key "
                    "for version 1), malformed, or for another account",
                    "403": "scope not allowed",
                    "409": "rollback (older version), another keyring with the same version, or a version "
                    "other than current + 1",
                    "413": "keyring too large",
                },
                body=_BYTES,
            ),
        },
        "/v1/keyring/{version}": {
            "get": _op(
                "One stored keyring version (to follow root handovers version by version)",
                "host, restore, admin",
                {"200": {"description": "the signed keyring of that version", "content": _BYTES}},
                {"400": "invalid version", "404": "no such version"},
                params=[_KEYRING_VERSION],
            ),
        },
        "/v1/envelopes": {
            "get": _op(
                "List the backup ids that have a key envelope, in order, a page at a time",
                "restore, admin",
                {
                    "200": {
                        "description": "one page; 'next' is the 'after' of the next page, or null",
                        "content": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "envelopes": {"type": "array", "items": _HEX32},
                                    "next": {"type": ["string", "null"]},
                                },
                            }
                        ),
                    }
                },
                {
                    "400": "invalid 'after' or 'limit'",
                    "403": "scope not allowed (host credentials cannot list)",
                },
                params=[
                    {"name": "after", "in": "query", "required": False, "schema": _HEX32},
                    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"}},
                ],
            )
        },
        "/v1/envelopes/{backup_id}": {
            "put": _op(
                "Store a backup's signed key envelope: generation 0 (host key, create-only) or a "
                "re-wrap (generation >= 1, deletion key) that replaces every lower generation",
                "host, admin",
                {
                    "201": {"description": "stored", "content": _json(_STORED_ENVELOPE)},
                    "200": {"description": "identical envelope present", "content": _json(_STORED_ENVELOPE)},
                },
                {
                    "400": "invalid backup id, not a signed key envelope, bad signature, or an envelope "
                    "of another backup or account",
                    "403": "scope not allowed; signer not a current host or deletion key; generation 0 "
                    "not signed by a host key, or a re-wrap not signed by a deletion key",
                    "409": "wrapped to another keyring version or not to exactly the current recipients "
                    "(header X-Opsbackup-Keyring-Version: re-wrap); generation 0 present with other "
                    "content or already re-wrapped; a re-wrap with nothing to replace or not newer "
                    "than the stored generation; the account has no keyring",
                    "413": "envelope too large",
                },
                body=_BYTES,
                params=[_BACKUP],
            ),
            "get": _op(
                "The backup's current key envelope (header X-Opsbackup-Envelope-Generation)",
                "host, restore, admin",
                {"200": {"description": "the signed envelope, highest generation", "content": _BYTES}},
                {
                    "400": "invalid backup id",
                    "403": "scope not allowed",
                    "404": "no envelope for this backup",
                },
                params=[_BACKUP],
            ),
        },
        "/v1/delete": {
            "post": _op(
                "Delete objects, manifests and key envelopes named by a request signed with a deletion key",
                "host, restore, admin (the signature authorises, not the scope)",
                {
                    "200": {
                        "description": '{"deleted_objects", "deleted_manifests", "deleted_envelopes", '
                        '"missing", "kept_objects", "kept_envelopes", "kept_bytes"}: kept ones are needed '
                        "by a manifest outside the request's basis"
                    }
                },
                {
                    "400": "not a signed delete request, or a malformed body",
                    "403": "unsigned by a deletion key, bad signature, other account, stale, or replayed",
                    "413": "request too large",
                    "503": "a manifest could not be read, or the request ran past its deadline: send another",
                },
                body=_BYTES,
            )
        },
    },
}
