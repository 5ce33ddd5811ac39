"""``herald rule preview``'s answer read as it comes (``Accept: application/x-ndjson``): a
progress bar on the terminal's stderr while the server reads the range, then the result."""

from __future__ import annotations

from typing import Any

import orjson

from herald.cli.common import api_client, api_failed, fail

NDJSON = "application/x-ndjson"


def preview_with_progress(url: str | None, token: str | None, body: dict[str, Any]) -> Any:
    """POST ``body`` to /rule/preview, showing its progress; the preview's document."""
    import httpx
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with api_client(url, token) as client, bar:
        task = bar.add_task("previewing", total=1.0)
        try:
            with client.stream(
                "POST",
                "/rule/preview",
                json=body,
                headers={"Accept": NDJSON},
                timeout=httpx.Timeout(30, read=None),
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    api_failed(response)
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    message = orjson.loads(line)
                    if "progress" in message:
                        step = message["progress"]
                        described = f"{step['read']} events read, through {step['through']}"
                        bar.update(task, completed=step["fraction"], description=described)
                    elif "result" in message:
                        return message["result"]
                    elif "error" in message:
                        error = message["error"]
                        fail(f"{error['status']} {error.get('detail') or error['title']}")
        except httpx.HTTPError as exc:
            fail(f"cannot reach Herald at {client.base_url}: {exc}")
    fail("the preview's answer ended without its result")
