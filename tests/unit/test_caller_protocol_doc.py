"""docs/caller-protocol.md lists every error code and end reason the services can send.

The codes are collected from the source, not from a hand-kept list: every string given as ``code=`` to a
call (``RealtimeError`` subclasses, ``ErrorFrame``), every ``default_code`` of an error class, the codes
of ``TokenError(status, code, ...)`` and of the ingress's HTTP refusals (``_refuse(..., status, code,
...)``) — literals, conditional expressions and module constants alike — plus every ``EndReason`` wire
name. Each must appear in the document as `` `code` ``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from rtvoice.core.end_reason import all_wire_names

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services" / "rtvoice"
DOC = ROOT / "docs" / "caller-protocol.md"

#: Not the caller's business: the offline engine speaks the OpenAI protocol to the bridge (its errors
#: reach callers through the bridge's provider codes), the caller client and `rtvoice up` send nothing.
SKIPPED_PACKAGES = ("localrt", "caller", "up", "v1")

#: Codes that exist in the source but can never reach a caller, and why.
NEVER_SENT_TO_CALLERS = {
    # The recorder refuses a session id that is not a safe folder name (gRPC INVALID_ARGUMENT to the
    # bridge); the ingress mints uuid4 hex ids, which always are.
    "bad_session_id",
}

#: Positional index of the code in calls that take it positionally.
POSITIONAL_CODE = {"TokenError": 1, "_refuse": 3}


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(SERVICES.rglob("*.py")):
        if path.relative_to(SERVICES).parts[0] in SKIPPED_PACKAGES:
            continue
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` assignments."""
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            value = node.value.value
            if isinstance(value, str):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        out[target.id] = value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                out[node.target.id] = node.value.value
    return out


def _strings(expr: ast.expr, constants: dict[str, str]) -> set[str]:
    """The code strings an expression can evaluate to (literals, ``a if c else b``, module constants)."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        return _strings(expr.body, constants) | _strings(expr.orelse, constants)
    if isinstance(expr, ast.Name) and expr.id in constants:
        return {constants[expr.id]}
    return set()


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def error_codes() -> dict[str, set[str]]:
    """Every error code the services can send → the modules that send it."""
    modules = list(_modules())
    everywhere: dict[str, str] = {}
    for _, tree in modules:
        everywhere.update(_string_constants(tree))
    found: dict[str, set[str]] = {}
    for path, tree in modules:
        constants = {**everywhere, **_string_constants(tree)}
        where = str(path.relative_to(SERVICES))
        exprs: list[ast.expr] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                exprs += [kw.value for kw in node.keywords if kw.arg == "code"]
                index = POSITIONAL_CODE.get(_call_name(node))
                if index is not None and len(node.args) > index:
                    exprs.append(node.args[index])
            elif isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if isinstance(stmt, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == "default_code" for t in stmt.targets
                    ):
                        exprs.append(stmt.value)
        for expr in exprs:
            for code in _strings(expr, constants):
                found.setdefault(code, set()).add(where)
    return found


def _documented(name: str, text: str) -> bool:
    return f"`{name}`" in text


def test_the_scan_sees_the_known_codes() -> None:
    codes = error_codes()
    # One of each way a code is written: keyword literal, default_code, TokenError, _refuse, constant.
    for code in ("bad_json", "invalid_api_key", "expired", "origin_not_allowed", "override_not_allowed"):
        assert code in codes, code
    assert len(codes) > 40


def test_every_error_code_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = {
        code: sorted(where)
        for code, where in error_codes().items()
        if code not in NEVER_SENT_TO_CALLERS and not _documented(code, text)
    }
    assert not missing, f"error codes missing from {DOC.name}: {missing}"


def test_every_end_reason_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in all_wire_names() if not _documented(name, text)]
    assert not missing, f"end reasons missing from {DOC.name}: {missing}"


def test_never_sent_codes_still_exist() -> None:
    stale = NEVER_SENT_TO_CALLERS - set(error_codes())
    assert not stale, f"remove from NEVER_SENT_TO_CALLERS, no longer in the source: {stale}"
