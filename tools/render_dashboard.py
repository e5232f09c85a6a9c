"""Render the Grafana dashboard from real metrics into one PNG, without Grafana.

Grafana cannot be installed everywhere (it is not in Debian), but the dashboard's queries are plain
PromQL. This script starts Debian's ``prometheus`` on loopback with a throwaway config that scrapes a
live llmserve, lets it collect for ``--minutes`` (optionally driving traffic itself with ``--traffic``),
runs every panel's queries through Prometheus' HTTP API, draws the panels where the dashboard puts them
(inline SVG, dark theme) and screenshots that page with headless Chromium::

    python tools/render_dashboard.py --llmserve http://127.0.0.1:8888 --minutes 3 --traffic \\
        --out docs/img/dashboard.png

Cache hits show only if the server has a response cache on (``LLMSERVE_CACHE__EXACT__ENABLED=true``).
``--prometheus-url`` queries an existing Prometheus instead of starting one (no waiting then).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import math
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DASHBOARD = ROOT / "deploy" / "grafana" / "llmserve.json"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
PAGE_WIDTH, GRID_ROW_PX, HEADER_PX, GAP_PX = 1800, 30, 64, 8
MAX_POINTS = 240
# Grafana's classic palette.
PALETTE = ["#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9", "#705DA0"]
PALETTE += ["#37872D", "#FADE2A", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477"]
NAMED_COLORS = {
    "green": "#73BF69",
    "yellow": "#FADE2A",
    "red": "#F2495C",
    "orange": "#FF9830",
    "blue": "#5794F2",
}
CACHED_PROMPTS = ["Hello!", "What can you do?", "Tell me a joke.", "你好"]
WORDS = ["please", "tell", "me", "about", "the", "weather", "music", "food", "travel", "books", "a", "story"]


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]  # (unix seconds, value); NaN where Prometheus has no value


@dataclass
class PanelData:
    panel: dict[str, Any]
    series: list[Series]
    error: str = ""


# -- Prometheus -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def local_prometheus(target: str, interval_s: float, api_key: str | None, binary: str) -> Iterator[str]:
    """A Prometheus on a free loopback port scraping ``target``'s /metrics; yields its URL."""
    executable = shutil.which(binary)
    if executable is None:
        sys.exit(f"{binary} not found: apt-get install prometheus (or pass --prometheus-url)")
    address = urlsplit(target)
    job: dict[str, Any] = {
        "job_name": "llmserve",
        "scheme": address.scheme or "http",
        "metrics_path": (address.path.rstrip("/") or "") + "/metrics",
        "static_configs": [{"targets": [address.netloc]}],
    }
    if api_key:
        job["authorization"] = {"credentials": api_key}
    interval = f"{max(1, round(interval_s))}s"
    config = {"global": {"scrape_interval": interval, "scrape_timeout": interval}, "scrape_configs": [job]}
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="render-dashboard-") as tmp:
        config_path = Path(tmp) / "prometheus.yml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        log = (Path(tmp) / "prometheus.log").open("wb")
        command = [executable, f"--config.file={config_path}", f"--storage.tsdb.path={tmp}/data"]
        command += [f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200, 30, "Prometheus ready")
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def _wait(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(0.5)
    sys.exit(f"timed out waiting for {what}")


def wait_for_scrape(prometheus: str, seconds: float = 30) -> None:
    """Returns once the llmserve target has been scraped successfully; exits with its error if not."""

    def up() -> bool:
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        errors = [t["lastError"] for t in targets if t.get("lastError")]
        if errors:
            print(f"  scrape failed: {errors[0]}", file=sys.stderr)
        return any(t["health"] == "up" for t in targets)

    _wait(up, seconds, "a successful scrape of llmserve's /metrics")


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:.3f}"}
    body = httpx.get(f"{prometheus}/api/v1/query_range", params=params, timeout=30).json()
    if body.get("status") != "success":
        raise RuntimeError(body.get("error", "query failed"))
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Grafana's ``$name`` / ``${name}`` variables replaced by their values."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m[1] or m[2], m[0]), expr)


def legend(template: str, labels: dict[str, str]) -> str:
    """``{{label}}`` filled in; a series whose labels fill nothing is named by its label set."""
    filled = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), template).strip()
    return filled or ", ".join(f"{key}={value}" for key, value in sorted(labels.items())) or "value"


def fetch(
    prometheus: str, dashboard: dict[str, Any], start: float, end: float, rate_s: float
) -> list[PanelData]:
    step = max(1.0, math.ceil((end - start) / MAX_POINTS))
    variables = {"__rate_interval": f"{round(rate_s)}s", "__interval": f"{round(step)}s"}
    for variable in dashboard.get("templating", {}).get("list", []):
        variables[variable["name"]] = variable.get("allValue") or ".*"
    panels = []
    for panel in dashboard["panels"]:
        data = PanelData(panel, [])
        for target in panel.get("targets", []):
            try:
                expr = substitute(target["expr"], variables)
                for result in query_range(prometheus, expr, start, end, step):
                    points = [(float(t), float(v)) for t, v in result["values"]]
                    if all(math.isnan(v) for _, v in points):  # e.g. a quantile of a histogram with no rate
                        continue
                    data.series.append(
                        Series(legend(target.get("legendFormat", ""), result["metric"]), points)
                    )
            except (httpx.HTTPError, RuntimeError) as exc:
                data.error = f"{type(exc).__name__}: {exc}"
                print(f"  panel {panel['title']!r}: {data.error}", file=sys.stderr)
        panels.append(data)
    return panels


# -- Traffic --------------------------------------------------------------------------------------


async def drive_traffic(
    base: str, api_key: str | None, model: str, seconds: float, concurrency: int
) -> dict[str, int]:
    """Concurrent chat completions until ``seconds`` pass: repeated temperature-0 prompts (cache hits),
    fresh prompts, streams (TTFT, inter-token latency) and a few for a model that does not exist (404)."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    rng = random.Random(7)

    async def one(client: httpx.AsyncClient) -> str:
        roll = rng.random()
        body: dict[str, Any] = {"model": model, "max_tokens": 24}
        if roll < 0.35:
            body |= {"messages": [{"role": "user", "content": rng.choice(CACHED_PROMPTS)}], "temperature": 0}
        else:
            text = " ".join(rng.choices(WORDS, k=6))
            body |= {"messages": [{"role": "user", "content": text}], "temperature": 0.9}
        if roll > 0.95:
            body["model"] = "no-such-model"
        if 0.6 < roll <= 0.95:
            async with client.stream(
                "POST", "/v1/chat/completions", json=body | {"stream": True}
            ) as response:
                async for _ in response.aiter_lines():
                    pass
                return str(response.status_code)
        return str((await client.post("/v1/chat/completions", json=body)).status_code)

    async def worker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            try:
                status = await one(client)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
                await asyncio.sleep(0.5)
            statuses[status] = statuses.get(status, 0) + 1

    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return statuses


def first_model(base: str, api_key: str | None) -> str:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    models = httpx.get(f"{base}/v1/models", headers=headers, timeout=10).json()["data"]
    return str(models[0]["id"])


# -- Drawing --------------------------------------------------------------------------------------


def format_value(value: float, unit: str) -> str:
    if math.isnan(value):
        return "–"
    if unit == "s":
        for scale, suffix in ((60.0, " min"), (1.0, " s"), (1e-3, " ms"), (1e-6, " µs")):
            if abs(value) >= scale or scale == 1e-6:
                return f"{value / scale:.3g}{suffix}" if value else "0 s"
    if unit == "percentunit":
        return f"{value * 100:.3g}%"
    if unit == "currencyUSD":
        return f"${value:,.2f}" if abs(value) >= 1 or value == 0 else f"${value:.2g}"
    suffix = " req/s" if unit == "reqps" else ""
    for scale, letter in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{letter}{suffix}"
    return f"{value:.3g}{suffix}"


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    return [first + i * step for i in range(count + 2) if first + i * step <= high + step * 0.999]


def time_ticks(start: float, end: float) -> list[float]:
    span = end - start
    step = next((s for s in (10, 15, 30, 60, 120, 300, 600, 1800, 3600) if span / s <= 7), 7200)
    first = math.ceil(start / step) * step
    return [t for t in range(int(first), int(end) + 1, step)]


def _el(tag: str, text: str = "", **attrs: object) -> str:
    """One SVG/HTML element; floats get one decimal, ``class_`` is ``class``, ``_`` in names is ``-``."""
    rendered = " ".join(
        f'{name.rstrip("_").replace("_", "-")}="{f"{value:.1f}" if isinstance(value, float) else value}"'
        for name, value in attrs.items()
    )
    return f"<{tag} {rendered}>{html.escape(text)}</{tag}>" if text else f"<{tag} {rendered}/>"


def _stacked(series: list[Series]) -> list[tuple[Series, dict[float, float]]]:
    """Each series raised by the ones before it, with the level it starts from (its fill's floor)."""
    totals: dict[float, float] = {}
    stacked = []
    for entry in series:
        floor = dict(totals)
        points = []
        for t, v in entry.points:
            if not math.isnan(v):
                totals[t] = totals.get(t, 0.0) + v
            points.append((t, totals.get(t, v)))
        stacked.append((Series(entry.name, points), floor))
    return stacked


def _time_axis(start: float, end: float, x: Any, height: int) -> list[str]:
    return [
        _el(
            "text",
            datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S"),
            x=x(t),
            y=height - 4,
            text_anchor="middle",
        )
        for t in time_ticks(start, end)
    ]


def timeseries_svg(data: PanelData, start: float, end: float, width: int, height: int) -> str:
    defaults = data.panel.get("fieldConfig", {}).get("defaults", {})
    custom, unit = defaults.get("custom", {}), defaults.get("unit", "short")
    stack = custom.get("stacking", {}).get("mode") == "normal"
    layers = _stacked(data.series) if stack else [(entry, {}) for entry in data.series]
    values = [v for entry, _ in layers for _, v in entry.points if not math.isnan(v)]
    low = defaults.get("min", min([custom.get("axisSoftMin", math.inf), *values], default=0.0))
    high = defaults.get("max", max([custom.get("axisSoftMax", -math.inf), *values], default=1.0))
    ticks = nice_ticks(low, high if high > low else low + 1)
    low, high = ticks[0], ticks[-1]
    left, right, plot_h = 78, width - 8, height - 26

    def x(t: float) -> float:
        return left + (t - start) / max(end - start, 1) * (right - left)

    def y(v: float) -> float:
        return 6 + plot_h - (v - low) / ((high - low) or 1) * plot_h

    parts = _time_axis(start, end, x, height)
    for tick in ticks:
        parts.append(_el("line", x1=left, x2=right, y1=y(tick), y2=y(tick), class_="grid"))
        parts.append(_el("text", format_value(tick, unit), x=left - 6, y=y(tick) + 4, text_anchor="end"))
    if custom.get("thresholdsStyle"):
        for step in defaults.get("thresholds", {}).get("steps", [])[1:]:
            if low <= step["value"] <= high:
                color = NAMED_COLORS.get(step["color"], step["color"])
                line_y = y(step["value"])
                parts.append(
                    _el("line", x1=left, x2=right, y1=line_y, y2=line_y, stroke=color, stroke_dasharray="6 4")
                )
    for index, (entry, floor) in enumerate(layers):
        color = PALETTE[index % len(PALETTE)]
        for run in _runs(entry.points):
            line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
            under = " ".join(f"{x(t):.1f},{y(floor.get(t, max(low, 0.0))):.1f}" for t, _ in reversed(run))
            parts.append(_el("polygon", points=f"{line} {under}", fill=color, fill_opacity=0.12))
            parts.append(_el("polyline", points=line, fill="none", stroke=color, stroke_width=2))
    return f'<svg width="{width}" height="{height}">{"".join(parts)}</svg>'


def _runs(points: list[tuple[float, float]]) -> Iterator[list[tuple[float, float]]]:
    """The stretches without gaps (Prometheus has no value, or NaN, in between)."""
    run: list[tuple[float, float]] = []
    for point in points:
        if math.isnan(point[1]):
            if run:
                yield run
            run = []
        else:
            run.append(point)
    if run:
        yield run


def _segments(points: list[tuple[float, float]], end: float) -> Iterator[tuple[float, float, float]]:
    """(from, to, value) for each stretch of one value."""
    known = [(t, v) for t, v in points if not math.isnan(v)]
    i = 0
    while i < len(known):
        j = i
        while j + 1 < len(known) and known[j + 1][1] == known[i][1]:
            j += 1
        yield known[i][0], known[j + 1][0] if j + 1 < len(known) else end, known[i][1]
        i = j + 1


def timeline_svg(data: PanelData, start: float, end: float, width: int, height: int) -> str:
    mappings: dict[str, dict[str, str]] = {}
    for mapping in data.panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        mappings.update(mapping.get("options", {}))
    left, right = 120, width - 8
    row_h = min(40.0, (height - 20) / max(len(data.series), 1))

    def x(t: float) -> float:
        return left + (t - start) / max(end - start, 1) * (right - left)

    parts = _time_axis(start, end, x, height)
    for row, entry in enumerate(data.series):
        top, middle = row * row_h + 2, row * row_h + 2 + row_h * 0.4 + 4
        parts.append(_el("text", entry.name[:18], x=left - 6, y=middle, text_anchor="end"))
        for t0, t1, value in _segments(entry.points, end):
            mapping = mappings.get(f"{value:g}", {"text": f"{value:g}", "color": "#8AB8FF"})
            color = NAMED_COLORS.get(mapping["color"], mapping["color"])
            span = x(t1) - x(t0)
            parts.append(_el("rect", x=x(t0), y=top, width=max(span, 1.0), height=row_h * 0.8, fill=color))
            if span > 7 * len(mapping["text"]) + 8:
                parts.append(
                    _el(
                        "text",
                        mapping["text"],
                        x=x(t0) + span / 2,
                        y=middle,
                        text_anchor="middle",
                        class_="on",
                    )
                )
    return f'<svg width="{width}" height="{height}">{"".join(parts)}</svg>'


def legend_html(data: PanelData) -> str:
    if data.panel["type"] != "timeseries":
        return ""
    unit = data.panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    items = []
    for index, entry in enumerate(data.series):
        last = next((v for _, v in reversed(entry.points) if not math.isnan(v)), math.nan)
        swatch = f'<i style="background:{PALETTE[index % len(PALETTE)]}"></i>'
        items.append(
            f"<span>{swatch}{html.escape(entry.name)} <b>{html.escape(format_value(last, unit))}</b></span>"
        )
    return f'<div class="legend">{"".join(items)}</div>'


def panel_html(
    data: PanelData, start: float, end: float, left: float, top: float, width: int, height: int
) -> str:
    legend_block = legend_html(data)
    chart_h = height - 34 - (44 if legend_block else 0)
    if data.error:
        body = _el("div", data.error, class_="empty error")
    elif not data.series:
        body = _el("div", "No data", class_="empty")
    elif data.panel["type"] == "state-timeline":
        body = timeline_svg(data, start, end, width - 16, chart_h)
    else:
        body = timeseries_svg(data, start, end, width - 16, chart_h)
    style = f"left:{left:.0f}px;top:{top:.0f}px;width:{width}px;height:{height}px"
    return f'<div class="panel" style="{style}">{_el("h2", data.panel["title"])}{body}{legend_block}</div>'


def page_html(dashboard: dict[str, Any], panels: list[PanelData], start: float, end: float, note: str) -> str:
    column, row = (PAGE_WIDTH - GAP_PX) / 24, GRID_ROW_PX * 1.25
    boxes = []
    for data in panels:
        grid = data.panel["gridPos"]
        left, top = GAP_PX + grid["x"] * column, HEADER_PX + grid["y"] * row
        width, height = int(grid["w"] * column - GAP_PX), int(grid["h"] * row - GAP_PX)
        boxes.append(panel_html(data, start, end, left, top, width, height))
    bottom = max(p.panel["gridPos"]["y"] + p.panel["gridPos"]["h"] for p in panels)
    span = f"{_utc(start)} – {_utc(end)} UTC"
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin:0; background:#111217; color:#ccccdc; font:13px Inter,Helvetica,Arial,sans-serif;
       width:{PAGE_WIDTH}px; height:{int(HEADER_PX + bottom * row + GAP_PX)}px; position:relative; }}
header {{ position:absolute; left:{GAP_PX}px; right:{GAP_PX}px; top:10px; display:flex;
         justify-content:space-between; align-items:baseline; }}
header h1 {{ font-size:20px; margin:0; color:#fff; }} header span {{ color:#8e8e9e; }}
.panel {{ position:absolute; box-sizing:border-box; background:#181b1f; border:1px solid #2c3235;
          border-radius:4px; padding:6px 8px; overflow:hidden; }}
.panel h2 {{ font-size:14px; font-weight:500; margin:0 0 6px; color:#d8d9da; }}
svg text {{ fill:#8e8e9e; font-size:11px; }} svg text.on {{ fill:#111217; font-weight:600; }}
svg rect {{ fill-opacity:0.85; }} .grid {{ stroke:#2c3235; }}
.empty {{ color:#8e8e9e; text-align:center; margin-top:60px; }} .error {{ color:#F2495C; }}
.legend {{ height:40px; overflow:hidden; font-size:12px; display:flex; flex-wrap:wrap; gap:2px 14px; }}
.legend i {{ display:inline-block; width:12px; height:3px; margin:0 5px 3px 0; vertical-align:middle; }}
.legend b {{ font-weight:500; color:#fff; }}
</style></head><body><header>{_el("h1", dashboard.get("title", "dashboard"))}
{_el("span", f"{span} · {note}")}</header>{"".join(boxes)}</body></html>"""


def _utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S")


def screenshot(page: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")
    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": PAGE_WIDTH, "height": 800})
            tab.set_content(page)
            tab.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()


# -- Command line ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--llmserve", default="http://127.0.0.1:8888", help="llmserve base URL to scrape")
    parser.add_argument(
        "--minutes", type=float, default=3.0, help="how long to collect (and the range drawn)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "dashboard.png")
    parser.add_argument("--dashboard", type=Path, default=DEFAULT_DASHBOARD)
    parser.add_argument("--traffic", action="store_true", help="send chat completions while collecting")
    parser.add_argument("--concurrency", type=int, default=4, help="parallel clients with --traffic")
    parser.add_argument("--model", help="model for --traffic (default: the first of /v1/models)")
    parser.add_argument("--api-key", help="Bearer key for llmserve (traffic and scrapes)")
    parser.add_argument(
        "--scrape-interval",
        type=float,
        default=2.0,
        help="seconds between scrapes (--prometheus-url: its own)",
    )
    parser.add_argument("--prometheus", default="prometheus", help="the Prometheus binary to start")
    parser.add_argument("--prometheus-url", help="query this Prometheus instead of starting one")
    parser.add_argument("--html", type=Path, help="also keep the rendered HTML page here")
    return parser.parse_args(argv)


def collect(args: argparse.Namespace, collecting: bool) -> tuple[float, float]:
    """Traffic (or, with a Prometheus of our own, waiting) for ``--minutes``; the time range to draw."""
    seconds = args.minutes * 60
    if args.traffic:
        model = args.model or first_model(args.llmserve, args.api_key)
        print(f"driving traffic to {model} for {seconds:.0f}s", file=sys.stderr)
        statuses = asyncio.run(drive_traffic(args.llmserve, args.api_key, model, seconds, args.concurrency))
        print(f"  responses by status: {statuses}", file=sys.stderr)
    elif collecting:
        print(f"collecting for {seconds:.0f}s", file=sys.stderr)
        time.sleep(seconds)
    if collecting:
        time.sleep(args.scrape_interval * 2)  # one more scrape after the last request
    end = time.time()
    return end - seconds, end


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    dashboard = json.loads(args.dashboard.read_text())
    rate_s = max(4 * args.scrape_interval, 15.0)
    with contextlib.ExitStack() as stack:
        if args.prometheus_url:
            prometheus = args.prometheus_url.rstrip("/")
        else:
            prometheus = stack.enter_context(
                local_prometheus(args.llmserve, args.scrape_interval, args.api_key, args.prometheus)
            )
            wait_for_scrape(prometheus)
        start, end = collect(args, collecting=not args.prometheus_url)
        panels = fetch(prometheus, dashboard, start, end, rate_s)
        version = httpx.get(f"{prometheus}/api/v1/status/buildinfo", timeout=5).json()["data"]["version"]
    note = f"{args.dashboard.name} on Prometheus {version} scraping {args.llmserve}; drawn without Grafana"
    page = page_html(dashboard, panels, start, end, note)
    if args.html:
        args.html.write_text(page)
    screenshot(page, args.out)
    empty = [p.panel["title"] for p in panels if not p.series]
    print(f"wrote {args.out} ({len(panels) - len(empty)}/{len(panels)} panels with data)", file=sys.stderr)
    if empty:
        print(f"  no data: {', '.join(empty)}", file=sys.stderr)
    if len(empty) == len(panels):
        sys.exit("no panel has data: is llmserve serving /metrics?")


if __name__ == "__main__":
    main()
