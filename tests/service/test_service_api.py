"""The HTTP API over real sockets: auth, fetch and search equal to the local SDK, problem+json errors, usage."""

from __future__ import annotations

import time

import numpy as np
import pytest

from embsdk.client import Client
from tests.service._svc import BITS, MAX_BATCH, MAX_BODY, TOKEN_TTL, Service

PROBLEM = "application/problem+json"


def assert_problem(r, status: int, error: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body = r.json()
    assert body["status"] == status and body["error"] == error, body
    assert body["type"].startswith("https://") and body["title"] and body["detail"], body
    return body


def local(svc: Service) -> Client:
    return Client(svc.registry_url, svc.store_dir)


# ------------------------------------------------------------------ auth


def test_healthz_needs_no_token_and_everything_else_does(service: Service) -> None:
    with service.client(token=None) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        for path in ("/readyz", "/openapi.json", "/v1/generations", "/v1/items/1"):
            r = c.get(path)
            assert_problem(r, 401, "TokenRejected")
            assert r.headers["www-authenticate"] == "Bearer"
        assert_problem(c.post("/v1/search", json={"id": 1}), 401, "TokenRejected")


@pytest.mark.parametrize(
    "header",
    ["Basic abc", "Bearer", "Bearer nonsense", "Bearer emb_000000000000_secret", "token"],
)
def test_a_bad_token_is_401(service: Service, header: str) -> None:
    with service.client(token=None, headers={"Authorization": header}) as c:
        body = assert_problem(c.get("/v1/generations"), 401, "TokenRejected")
        assert "emb_" not in body["detail"] or "emb_<id>" in body["detail"]  # never echoes the token


def test_a_wrong_secret_for_a_real_id_is_401(service: Service) -> None:
    prefix = service.read_token.rsplit("_", 1)[0]
    token_id = service.read_token.split("_")[1]
    forged = f"emb_{token_id}_{'x' * 43}"
    assert forged.startswith(prefix.split("_")[0])
    with service.client(token=forged) as c:
        assert_problem(c.get("/v1/generations"), 401, "TokenRejected")


def test_a_read_token_cannot_do_admin_things(service: Service) -> None:
    with service.client("read") as c:
        body = assert_problem(c.get("/v1/tokens"), 403, "Forbidden")
        assert "admin" in body["detail"] and "read" in body["detail"]
    with service.client("admin") as c:
        listed = c.get("/v1/tokens").json()
    assert {t["team"] for t in listed} == {"search-team", "platform"}
    text = str(listed)
    assert service.read_token not in text and service.read_token.split("_")[2] not in text  # no secret
    assert all("secret_hash" not in t and "salt" not in t for t in listed)


def test_a_revoked_token_is_refused_within_the_cache_ttl(service: Service) -> None:
    issued = service.registry.issue_token("short-lived", "read")
    with service.client(token=issued.token) as c:
        assert c.get("/v1/generations").status_code == 200
        service.registry.revoke_token(issued.info.id)
        time.sleep(TOKEN_TTL + 0.2)
        body = assert_problem(c.get("/v1/generations"), 401, "TokenRejected")
        assert "revoked" in body["detail"]


def test_an_expired_token_is_refused(service: Service) -> None:
    issued = service.registry.issue_token("temp", "read", expires_days=1.5 / 86400)  # 1.5 s
    with service.client(token=issued.token) as c:
        assert c.get("/v1/generations").status_code == 200
        time.sleep(1.7)
        body = assert_problem(c.get("/v1/generations"), 401, "TokenRejected")
        assert "expired" in body["detail"]


# ------------------------------------------------------------------ reads equal to the local SDK


def test_generations_list_and_show_by_name_or_alias(service: Service) -> None:
    with service.client() as c:
        names = [g["name"] for g in c.get("/v1/generations").json()]
        assert names == ["unified-v1", "empty-v1"]
        shown = c.get("/v1/generations/production").json()
        assert (shown["name"], shown["resolved_from"], shown["embedding_spec"]["bits"]) == (
            "unified-v1",
            "production",
            BITS,
        )
        assert c.get("/v1/generations/unified-v1").json()["resolved_from"] is None
        assert_problem(c.get("/v1/generations/nope-v9"), 404, "GenerationNotFound")
        assert c.get("/readyz").json()["status"] == "ready"
        schema = c.get("/openapi.json").json()
        assert {"/v1/generations", "/v1/items/{item_id}", "/v1/items:batch", "/v1/search"} <= set(
            schema["paths"]
        )


def test_fetch_one_equals_the_local_sdk(service: Service) -> None:
    sdk = local(service)
    with service.client() as c:
        for i in (0, 17, len(service.ids) - 1):
            item = int(service.ids[i])
            got = c.get(f"/v1/items/{item}").json()
            want = sdk.get_embedding(item, "production")
            assert got == {
                "id": item,
                "generation": "unified-v1",
                "bits": BITS,
                "code": want.code.tobytes().hex(),
            }
            assert bytes.fromhex(got["code"]) == service.codes[i].tobytes()
            assert c.get(f"/v1/items/{item}", params={"version": "unified-v1"}).json() == got
    sdk.close()


def test_batch_json_and_binary_equal_the_local_sdk(service: Service) -> None:
    picked = [int(x) for x in service.ids[[5, 3, 40, 3, 399]]]  # any order, repeats allowed
    want = local(service).get_embeddings(picked, "production")
    with service.client() as c:
        js = c.post("/v1/items:batch", json={"ids": picked}).json()
        assert js["generation"] == "unified-v1" and js["bits"] == BITS
        assert [it["id"] for it in js["items"]] == picked
        assert [bytes.fromhex(it["code"]) for it in js["items"]] == [row.tobytes() for row in want.codes]

        r = c.post("/v1/items:batch", json={"ids": picked}, headers={"Accept": "application/octet-stream"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
        n, width = int(r.headers["x-emb-count"]), int(r.headers["x-emb-code-bytes"])
        assert (r.headers["x-emb-generation"], int(r.headers["x-emb-bits"]), n, width) == (
            "unified-v1",
            BITS,
            len(picked),
            BITS // 8,
        )
        assert len(r.content) == n * 8 + n * width
        ids = np.frombuffer(r.content[: n * 8], dtype="<i8")
        codes = np.frombuffer(r.content[n * 8 :], dtype=np.uint8).reshape(n, width)
        np.testing.assert_array_equal(ids, picked)
        np.testing.assert_array_equal(codes, want.codes)


def test_search_by_id_and_by_code_equals_the_local_sdk(service: Service) -> None:
    sdk = local(service)
    item = int(service.ids[11])
    with service.client() as c:
        for exclude_self in (False, True):
            got = c.post("/v1/search", json={"id": item, "k": 7, "exclude_self": exclude_self}).json()
            want = sdk.search(item, "production", k=7, exclude_self=exclude_self)
            assert got["generation"] == want.generation == "unified-v1"
            assert [h["id"] for h in got["hits"]] == want.ids.tolist()
            assert [h["distance"] for h in got["hits"]] == want.distances.tolist()
        code = service.codes[11]
        got = c.post(
            "/v1/search", json={"code": code.tobytes().hex(), "k": 5, "version": "unified-v1"}
        ).json()
        want = sdk.search(code, "unified-v1", k=5)
        assert [h["id"] for h in got["hits"]] == want.ids.tolist()
        assert got["hits"][0] == {"id": item, "distance": 0}
    sdk.close()


# ------------------------------------------------------------------ errors


def test_bad_input_is_a_problem_never_a_500(service: Service) -> None:
    missing = int(service.ids.max()) + 1
    with service.client() as c:
        body = assert_problem(c.get(f"/v1/items/{missing}"), 404, "ItemNotFound")
        assert str(missing) in body["detail"]
        assert_problem(
            c.get(f"/v1/items/{service.ids[0]}", params={"version": "nope-v9"}), 404, "GenerationNotFound"
        )
        assert_problem(
            c.get(f"/v1/items/{service.ids[0]}", params={"version": "empty-v1"}), 404, "StoreNotFound"
        )
        assert_problem(c.get("/v1/items/abc"), 400, "InvalidRequest")
        assert_problem(c.get(f"/v1/items/{2**64}"), 400, "InvalidItemId")
        assert_problem(c.post("/v1/items:batch", json={"ids": [missing]}), 404, "ItemNotFound")
        assert_problem(c.post("/v1/items:batch", json={"ids": ["1"]}), 400, "InvalidRequest")
        assert_problem(c.post("/v1/items:batch", json={"idz": [1]}), 400, "InvalidRequest")
        assert_problem(
            c.post("/v1/items:batch", content=b"{not json", headers={"Content-Type": "application/json"}),
            400,
            "InvalidRequest",
        )
        item = int(service.ids[0])
        for k in (0, -1, 10**9):
            body = assert_problem(c.post("/v1/search", json={"id": item, "k": k}), 400, "InvalidTopK")
        assert_problem(c.post("/v1/search", json={"id": item, "k": "many"}), 400, "InvalidRequest")
        assert_problem(c.post("/v1/search", json={"k": 3}), 400, "InvalidRequest")
        assert_problem(c.post("/v1/search", json={"id": item, "code": "00"}), 400, "InvalidRequest")
        assert_problem(c.post("/v1/search", json={"code": "zz"}), 400, "InvalidRequest")
        assert_problem(c.post("/v1/search", json={"code": "00ff"}), 400, "CodeLengthError")
        assert_problem(c.post("/v1/search", json={"id": missing}), 404, "ItemNotFound")
        assert_problem(c.get("/v1/nothing-here"), 404, "NotFound")


def test_a_long_version_name_is_a_quick_short_404(service: Service) -> None:
    """A 60,000-character version took 9 s (quadratic redaction of the error) and stalled the whole server."""
    import threading
    import time

    long_name = "a" * 60_000
    with service.client() as c:
        started = time.perf_counter()
        r = c.get(f"/v1/items/{service.ids[0]}", params={"version": long_name})
        body = assert_problem(r, 404, "GenerationNotFound")
        assert time.perf_counter() - started < 5  # a bound only a quadratic path can miss
        assert len(body["detail"]) < 400 and "60,000 characters" in body["detail"]
        done: list[int] = []
        slow = threading.Thread(
            target=lambda: done.append(
                c.get(f"/v1/items/{service.ids[0]}", params={"version": long_name}).status_code
            )
        )
        slow.start()
        assert c.get("/healthz").status_code == 200
        slow.join(30)
        assert done == [404]


def test_a_batch_over_the_limit_is_400_naming_it(service: Service) -> None:
    ids = [int(x) for x in service.ids[: MAX_BATCH + 1]]
    with service.client() as c:
        body = assert_problem(c.post("/v1/items:batch", json={"ids": ids}), 400, "BatchTooLarge")
        assert body["limit"] == MAX_BATCH and str(MAX_BATCH) in body["detail"]
        assert c.post("/v1/items:batch", json={"ids": ids[:MAX_BATCH]}).status_code == 200


def test_a_body_over_the_size_limit_is_413(service: Service) -> None:
    big = {"ids": [1] * (MAX_BODY // 2)}
    with service.client() as c:
        body = assert_problem(c.post("/v1/items:batch", json=big), 413, "BodyTooLarge")
        assert body["limit"] == MAX_BODY

        def chunks():  # no Content-Length: the server counts the bytes as they arrive
            yield b'{"ids": ['
            for _ in range(MAX_BODY // 4):
                yield b"1, 1, "
            yield b"1]}"

        r = c.post("/v1/items:batch", content=chunks(), headers={"Content-Type": "application/json"})
        assert_problem(r, 413, "BodyTooLarge")


# ------------------------------------------------------------------ usage


def test_usage_is_counted_per_team_and_generation(service: Service) -> None:
    item = int(service.ids[0])
    with service.client() as c:
        for _ in range(3):
            assert c.get(f"/v1/items/{item}").status_code == 200
        assert c.post("/v1/items:batch", json={"ids": [item]}).status_code == 200
        assert c.post("/v1/search", json={"id": item, "k": 2}).status_code == 200
        assert c.get(f"/v1/items/{item + 1}").status_code == 404  # a failed read is not counted
    with service.client("admin") as c:
        usage = c.get("/v1/usage").json()
    assert [(u["team"], u["generation"], u["requests"]) for u in usage] == [("search-team", "unified-v1", 5)]
    # aggregated in the registry: one row per (team, generation, day)
    assert [(u.team, u.requests) for u in service.registry.usage()] == [("search-team", 5)]


def test_a_retired_generation_is_410(service: Service) -> None:
    service.registry.retire("empty-v1", reason="test")
    with service.client() as c:
        body = assert_problem(
            c.get(f"/v1/items/{service.ids[0]}", params={"version": "empty-v1"}), 410, "RetiredGeneration"
        )
        assert "empty-v1" in body["detail"]
        assert_problem(
            c.post("/v1/search", json={"code": "00" * (BITS // 8), "version": "empty-v1"}),
            410,
            "RetiredGeneration",
        )


def test_every_bad_input_error_maps_to_a_4xx() -> None:
    """A typed error that means bad input (ValueError, LookupError) is never answered 500."""
    import inspect

    from embsdk import errors
    from service.problems import status_of

    classes = [c for c in vars(errors).values() if inspect.isclass(c) and issubclass(c, errors.EmbsdkError)]
    assert len(classes) > 30
    for cls in classes:
        status = status_of(cls.__new__(cls))
        if issubclass(cls, (ValueError, LookupError)) and not issubclass(cls, errors.InferenceError):
            assert 400 <= status < 500, (cls.__name__, status)
        assert status in {400, 401, 403, 404, 409, 410, 413, 500, 503}, (cls.__name__, status)
    assert status_of(errors.StoreLocked("g", None)) == 503 and status_of(errors.ShardCorrupt("x")) == 500


def test_lineage_events_compare_and_aliases_equal_the_registry(service: Service) -> None:
    reg = service.registry
    reg.add_parent("empty-v1", "unified-v1", "replaces")
    reg.add_metrics("unified-v1", {"coarse/t/r@1/binary": 0.5})
    reg.add_metrics("empty-v1", {"coarse/t/r@1/binary": 0.75})
    reg.set_alias("staging", "empty-v1", reason="try it")
    with service.client() as c:
        assert c.get("/v1/generations/empty-v1/lineage").json() == reg.lineage("empty-v1").to_dict()
        assert c.get("/v1/generations/production/lineage").json()["descendants"] == ["empty-v1"]
        events = c.get("/v1/generations/production/events").json()
        assert (
            events == [e.to_dict() for e in reg.events("unified-v1")]
            and events[0]["to_status"] == "candidate"
        )
        cmp = c.get("/v1/compare", params={"a": "production", "b": "staging"}).json()
        assert cmp == reg.compare("production", "staging").to_dict()
        assert c.get("/v1/aliases").json() == {"production": "unified-v1", "staging": "empty-v1"}
        hist = c.get("/v1/aliases/staging/history").json()
        assert [(h["generation"], h["reason"]) for h in hist] == [("empty-v1", "try it")]
        assert_problem(c.get("/v1/aliases/nope/history"), 404, "AliasNotFound")
        assert_problem(c.get("/v1/generations/nope-v9/lineage"), 404, "GenerationNotFound")
        assert_problem(c.get("/v1/compare", params={"a": "production"}), 400, "InvalidRequest")


def test_metrics_count_requests_errors_latency_and_reads_per_team(service: Service) -> None:
    item = int(service.ids[0])
    with service.client(token=None) as anon:
        assert_problem(anon.get("/metrics"), 401, "TokenRejected")
    with service.client() as c:
        for _ in range(3):
            assert c.get(f"/v1/items/{item}").status_code == 200
        assert c.get(f"/v1/items/{item + 1}").status_code == 404
        assert c.post("/v1/search", json={"id": item, "k": 2}).status_code == 200
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    route = 'route="/v1/items/{item_id}"'
    assert f'emb_http_requests_total{{method="GET",{route},status="200"}} 3.0' in text, text
    assert f'emb_http_errors_total{{{route},status="404"}} 1.0' in text
    assert f"emb_http_request_seconds_count{{{route}}} 4.0" in text
    assert 'emb_consumer_reads_total{generation="unified-v1",team="search-team"} 4.0' in text
    assert service.read_token not in text


def test_publishers_move_aliases_and_lifecycle_with_the_cli_rules_and_their_team_recorded(
    service: Service,
) -> None:
    reg = service.registry
    publisher = reg.issue_token("release-team", "publish").token
    with service.client("read") as c:
        assert_problem(c.put("/v1/aliases/staging", json={"generation": "empty-v1"}), 403, "Forbidden")
        assert_problem(c.post("/v1/generations/empty-v1/promote", json={"to": "staging"}), 403, "Forbidden")
    with service.client(publisher) as c:
        moved = c.put("/v1/aliases/staging", json={"generation": "empty-v1", "reason": "canary"}).json()
        assert (moved["alias"], moved["generation"], moved["who"]) == ("staging", "empty-v1", "release-team")
        assert reg.alias_history("staging")[-1].who == "release-team"
        assert_problem(
            c.put("/v1/aliases/staging", json={"generation": "nope-v9"}), 404, "GenerationNotFound"
        )
        assert_problem(
            c.put("/v1/aliases/unified-v1", json={"generation": "empty-v1"}), 400, "InvalidRegistryInput"
        )

        up = c.post("/v1/generations/unified-v1/promote", json={"to": "staging"}).json()
        assert (up["to_status"], up["who"]) == ("staging", "release-team")
        assert c.post("/v1/generations/unified-v1/promote", json={"to": "production"}).status_code == 200
        assert_problem(
            c.post("/v1/generations/empty-v1/promote", json={"to": "production"}), 409, "IllegalTransition"
        )
        refused = assert_problem(
            c.post("/v1/generations/unified-v1/deprecate", json={}), 409, "ConsumersAffected"
        )
        assert "search-team" in refused["detail"]
        assert_problem(
            c.post("/v1/generations/unified-v1/deprecate", json={"force": True}), 400, "InvalidRegistryInput"
        )
        done = c.post(
            "/v1/generations/unified-v1/deprecate", json={"force": True, "reason": "v2 is out"}
        ).json()
        assert (done["to_status"], done["who"], done["reason"]) == ("deprecated", "release-team", "v2 is out")
    assert reg.get("unified-v1").status == "deprecated"
    assert [e.who for e in reg.events("unified-v1")][-3:] == ["release-team"] * 3
