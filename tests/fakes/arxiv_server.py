"""A fake arXiv API on 127.0.0.1 serving real recorded Atom responses to the real `arxiv` client."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from tests.fakes.loopback import LoopbackServer, send

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "arxiv"

ID_FILES = {
    "1605.08386": "idlist_1605.08386.xml",
    "0808.05394,1707.08567": "idlist_0808.05394_1707.08567_one_missing.xml",
    "astro-ph/0601001": "idlist_astro-ph_0601001_oldstyle.xml",
    "2104.12255v1": "idlist_2104.12255v1_title_is_0.xml",
    "0000.0000": "empty_idlist_0000.0000.xml",
}


@dataclass
class FakeArxiv(LoopbackServer):
    """Any search_query gets the recorded 'testing' search pages (by start offset); id_list queries
    get their recorded files; `abc` gets the real HTTP 400 error feed; `pdfs` maps an arXiv id to a
    local PDF served at /pdf/<id>."""

    pdfs: dict[str, Path] = field(default_factory=dict)
    pdf_delays: dict[str, float] = field(default_factory=dict)  # id -> seconds before answering (timeouts)
    fail_with: int | None = None  # answer every query with this HTTP status
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/query"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status: int, data: bytes, ctype: str) -> None:
                send(self, status, data, ctype)

            def do_GET(self):
                owner.requests.append(self.path)
                u = urlparse(self.path)
                if u.path.startswith("/pdf/"):
                    pid = u.path[len("/pdf/"):]
                    if pid in owner.pdf_delays:
                        time.sleep(owner.pdf_delays[pid])
                    if pid in owner.pdfs:
                        self._send(200, owner.pdfs[pid].read_bytes(), "application/pdf")
                    else:
                        self._send(404, b"not found", "text/plain")
                    return
                if owner.fail_with:
                    self._send(owner.fail_with, b"unavailable", "text/plain")
                    return
                q = {k: v[0] for k, v in parse_qs(u.query).items()}
                status, name = owner.route(q)
                self._send(status, (FIXTURES / name).read_bytes(), "application/atom+xml; charset=utf-8")

        return Handler

    @staticmethod
    def route(q: dict[str, str]) -> tuple[int, str]:
        ids = q.get("id_list", "")
        if ids:
            if ids == "abc":
                return 400, "error_http400_idlist_abc.xml"
            return 200, ID_FILES.get(ids, "empty_idlist_0000.0000.xml")
        start = int(q.get("start", "0"))
        if start == 0:
            return 200, "search_all_testing_start0_max10.xml"
        if start == 10:
            return 200, "search_all_testing_start10_max10.xml"
        return 200, "empty_idlist_0000.0000.xml"
