"""``CodecellClient``: an aiohttp client for codecell's HTTP API v1.

Every method returns what the API answers (plain dicts and lists); a non-2xx answer raises
:class:`CodecellError`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import aiohttp

__all__ = ["CodecellClient", "CodecellError"]

DEFAULT_TIMEOUT = 330.0   # seconds per request: above the service's longest execution (300 s)


class CodecellError(Exception):
    """A non-2xx answer: ``status`` (HTTP), ``code`` and ``message`` from the API's error body.

    ``retry_after`` (seconds, or None) is set from ``Retry-After`` on 429 answers."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None):
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def _tool_call_dict(tool_call: Any) -> dict:
    """A tool call as the API takes it, from a dict or an openai-python object."""
    if isinstance(tool_call, Mapping):
        return dict(tool_call)
    if hasattr(tool_call, "model_dump"):          # openai-python >= 1 (pydantic v2)
        try:
            d = tool_call.model_dump()
            if isinstance(d, dict) and isinstance(d.get("function"), dict):
                return d
        except Exception:                          # pragma: no cover - fall back to attributes
            pass
    fn = getattr(tool_call, "function", None)
    if fn is None:
        raise TypeError(f"not a tool call: {tool_call!r}")
    if isinstance(fn, Mapping):
        name, arguments = fn.get("name"), fn.get("arguments")
    else:
        name, arguments = getattr(fn, "name", None), getattr(fn, "arguments", None)
    return {"id": getattr(tool_call, "id", None),
            "type": getattr(tool_call, "type", None) or "function",
            "function": {"name": name, "arguments": arguments}}


class CodecellClient:
    """Async client; use as ``async with CodecellClient(...) as client:`` or call ``close()``.

    ``session``: an existing ``aiohttp.ClientSession`` to share (not closed by this client).
    ``timeout``: seconds per request (a number or an ``aiohttp.ClientTimeout``)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8080", api_key: str | None = None,
                 session: aiohttp.ClientSession | None = None,
                 timeout: float | aiohttp.ClientTimeout | None = DEFAULT_TIMEOUT):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        if timeout is None or isinstance(timeout, aiohttp.ClientTimeout):
            self.timeout = timeout or aiohttp.ClientTimeout(total=None)
        else:
            self.timeout = aiohttp.ClientTimeout(total=float(timeout))
        self._session = session
        self._own_session = session is None

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> "CodecellClient":
        self._get_session()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session this client created (a session passed in is left open)."""
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()
        if self._own_session:
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or (self._own_session and self._session.closed):
            self._session = aiohttp.ClientSession(timeout=self.timeout)
            self._own_session = True
        return self._session

    # -- transport ---------------------------------------------------------------------------
    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def _request(self, method: str, path: str, *, params=None, json_body=None,
                       data=None, raw: bool = False):
        session = self._get_session()
        kwargs: dict[str, Any] = {"headers": self._headers(), "timeout": self.timeout}
        if params:
            kwargs["params"] = params
        if json_body is not None:
            kwargs["json"] = json_body
        if data is not None:
            kwargs["data"] = data
        async with session.request(method, self.base_url + path, **kwargs) as resp:
            body = await resp.read()
            if resp.status >= 300:
                raise self._error(resp, body)
            if raw:
                return body
            if resp.status == 204 or not body:
                return None
            return json.loads(body)

    @staticmethod
    def _error(resp: aiohttp.ClientResponse, body: bytes) -> CodecellError:
        code, message = "http_error", body.decode("utf-8", "replace")[:500] or resp.reason or ""
        try:
            err = json.loads(body).get("error")
            if isinstance(err, dict):
                code = str(err.get("code") or code)
                message = str(err.get("message") or message)
        except (ValueError, AttributeError):
            pass
        retry_after = None
        if resp.status == 429:
            try:
                retry_after = float(resp.headers.get("Retry-After", ""))
            except ValueError:
                retry_after = None
        return CodecellError(resp.status, code, message, retry_after)

    # -- executions --------------------------------------------------------------------------
    async def execute_code(self, code: str, user_id: str | int,
                           user_files: Iterable[str] | None = None,
                           install_packages: Iterable[str] | None = None,
                           timeout: float | None = None, **extra) -> dict:
        """Run ``code`` for the user (POST /v1/executions) and return the result dict
        (``success, output, error, execution_time, return_code, generated_files,
        installed_packages, failed_packages``, ...). ``user_files``: file ids placed in
        /mnt/data (default: all of the user's files)."""
        payload: dict[str, Any] = {"user_id": str(user_id), "code": code}
        if user_files is not None:
            payload["file_ids"] = list(user_files)
        if install_packages:
            payload["install_packages"] = list(install_packages)
        if timeout is not None:
            payload["timeout"] = timeout
        payload.update(extra)
        return await self._request("POST", "/v1/executions", json_body=payload)

    # -- files -------------------------------------------------------------------------------
    async def upload_file(self, user_id: str | int, data_or_path: bytes | str | os.PathLike,
                          filename: str | None = None) -> dict:
        """Upload bytes or a file at a path (POST /v1/files); returns the file object."""
        if isinstance(data_or_path, (bytes, bytearray, memoryview)):
            data = bytes(data_or_path)
            filename = filename or "upload.bin"
        else:
            path = Path(data_or_path)
            data = path.read_bytes()
            filename = filename or path.name
        form = aiohttp.FormData()
        form.add_field("user_id", str(user_id))
        form.add_field("file", data, filename=filename, content_type="application/octet-stream")
        return await self._request("POST", "/v1/files", data=form)

    async def list_user_files(self, user_id: str | int) -> list:
        """The user's live files, oldest first (GET /v1/files)."""
        obj = await self._request("GET", "/v1/files", params={"user_id": str(user_id)})
        return obj.get("files", []) if isinstance(obj, dict) else []

    async def get_file_info(self, user_id: str | int, file_id: str) -> dict:
        """One file object (GET /v1/files/{id})."""
        return await self._request("GET", f"/v1/files/{file_id}",
                                   params={"user_id": str(user_id)})

    async def delete_user_file(self, user_id: str | int, file_id: str) -> bool:
        """Delete one file: True when deleted, False when unknown (404)."""
        try:
            await self._request("DELETE", f"/v1/files/{file_id}",
                                params={"user_id": str(user_id)})
            return True
        except CodecellError as e:
            if e.status == 404:
                return False
            raise

    async def delete_all_user_files(self, user_id: str | int) -> int:
        """Delete every file of the user; returns how many."""
        obj = await self._request("DELETE", "/v1/files", params={"user_id": str(user_id)})
        return int((obj or {}).get("deleted_count", 0))

    async def download_file(self, user_id: str | int, file_id: str) -> bytes:
        """A file's bytes (GET /v1/files/{id}/content)."""
        return await self._request("GET", f"/v1/files/{file_id}/content",
                                   params={"user_id": str(user_id)}, raw=True)

    async def cleanup_expired_files(self) -> dict:
        """Run cleanup now (POST /v1/cleanup): ``deleted_files, venv_recreated, timestamp``."""
        return await self._request("POST", "/v1/cleanup", json_body={})

    # -- status, packages ----------------------------------------------------------------------
    async def get_interpreter_status(self) -> dict:
        """GET /v1/status."""
        return await self._request("GET", "/v1/status")

    async def install_packages(self, names: Iterable[str] | str,
                               user_id: str | int | None = None) -> dict:
        """Install approved packages (POST /v1/packages); refused names are in
        ``failed_packages``."""
        if isinstance(names, str):
            names = [names]
        payload: dict[str, Any] = {"packages": list(names)}
        if user_id is not None:
            payload["user_id"] = str(user_id)
        return await self._request("POST", "/v1/packages", json_body=payload)

    async def list_packages(self) -> dict:
        """GET /v1/packages: the environment, its packages and the allowlist."""
        return await self._request("GET", "/v1/packages")

    # -- tools ---------------------------------------------------------------------------------
    async def get_tools(self) -> list:
        """The model's tool definitions in OpenAI's format (GET /v1/tools)."""
        obj = await self._request("GET", "/v1/tools")
        return obj.get("tools", []) if isinstance(obj, dict) else list(obj or [])

    async def handle_tool_call(self, user_id: str | int, tool_call: Any) -> dict:
        """Run one model tool call (POST /v1/tool-calls); returns ``message`` (role tool, ready
        to append), ``attachments`` and ``result``. ``tool_call``: a dict or an openai-python
        tool call object."""
        payload = {"user_id": str(user_id), "tool_call": _tool_call_dict(tool_call)}
        return await self._request("POST", "/v1/tool-calls", json_body=payload)

    async def health(self) -> bool:
        """True when GET /healthz answers ok."""
        try:
            obj = await self._request("GET", "/healthz")
            return isinstance(obj, dict) and obj.get("status") == "ok"
        except (CodecellError, aiohttp.ClientError, OSError):
            return False
