"""Three AI "providers" behind breakers, limiters, retries and a tier fallback, with metrics.

Starts three stub provider HTTP services on 127.0.0.1 (ephemeral ports). Each is called
through its own circuit breaker and rate limiter, with a short retry, and the three are
chained as tiers: primary, then secondary, then tertiary. Midway the primary goes down:
its breaker opens, the chain skips it without calling it, and the secondary answers.
A Prometheus exporter on 127.0.0.1 is scraped while the primary is down, and again after
it is back. Health is printed at each step.

Run: ``python py/examples/providers.py`` (needs ``fastbreaker[prometheus]``).
The test suite runs it with ``run(requests=..., quiet=True)`` and checks the summary.
"""

from __future__ import annotations

import argparse
import http.server
import json
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

import fastbreaker
from fastbreaker import AllTiersFailedError, Registry

try:
    import prometheus_client
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover - the example needs the extra
    sys.exit("this example needs prometheus_client: pip install 'fastbreaker[prometheus]'")

import fastbreaker.prometheus


class ProviderError(Exception):
    """A provider answered with a 5xx status."""

    def __init__(self, provider: str, status: int) -> None:
        super().__init__(f"{provider} answered {status}")
        self.provider = provider
        self.status = status


@dataclass
class StubProvider:
    """A local HTTP service answering ``{"provider": name, "answer": ...}``, or 503 when down."""

    name: str
    down: bool = False
    hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> str:
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with provider.lock:
                    provider.hits += 1
                status = 503 if provider.down else 200
                body = json.dumps({"provider": provider.name, "answer": self.path}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def client(name: str, url: str, registry: Registry) -> Callable[[str], str]:
    """``ask(prompt)`` for one provider: its limiter, its breaker, a short retry."""
    breaker = registry.get_or_create(name, failure_threshold=3, wait_duration=60.0)
    limiter = registry.get_or_create_limiter(name, rate=1000.0, per=1.0, burst=50)

    @fastbreaker.retry(attempts=2, base_delay=0.001, max_delay=0.01, retry_on=ProviderError)
    @breaker
    def ask(prompt: str) -> str:
        limiter.acquire(timeout=1.0)
        try:
            with urllib.request.urlopen(f"{url}/{prompt}", timeout=5) as r:
                answer: str = json.load(r)["provider"]
                return answer
        except urllib.error.HTTPError as e:
            raise ProviderError(name, e.code) from None

    ask.__name__ = name
    return ask


def scrape(port: int) -> dict[str, float]:
    """The exporter's samples, keyed ``name{label=value,...}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}"] = s.value
    return samples


def run(requests: int = 30, quiet: bool = False) -> dict[str, Any]:
    """Runs the scenario and returns a summary (what served each phase, scrapes, health)."""
    say: Callable[..., None] = (lambda *a: None) if quiet else print
    registry = Registry()
    prom = prometheus_client.CollectorRegistry()
    fastbreaker.prometheus.register(registry, prometheus_registry=prom)
    exporter, exporter_thread = prometheus_client.start_http_server(
        0, addr="127.0.0.1", registry=prom
    )
    port = exporter.server_address[1]
    providers = [StubProvider("primary"), StubProvider("secondary"), StubProvider("tertiary")]
    try:
        tiers = [client(p.name, p.start(), registry) for p in providers]
        chain = fastbreaker.fallback_chain(*tiers)
        summary: dict[str, Any] = {"served": {}, "scrapes": {}, "health": {}}

        def phase(label: str) -> None:
            served: dict[str, int] = {}
            for i in range(requests):
                try:
                    who = chain(f"q{i}")
                except AllTiersFailedError:
                    who = "none"
                served[who] = served.get(who, 0) + 1
            summary["served"][label] = served
            summary["scrapes"][label] = scrape(port)
            h = fastbreaker.health(registry)
            summary["health"][label] = h.status
            state = registry.get("primary")
            say(
                f"[{label}] served by {served}; primary breaker "
                f"{state.state if state else '?'}; health {h.status} {list(h.reasons)}"
            )

        phase("healthy")
        providers[0].down = True
        phase("primary down")
        summary["primary_hits_while_down"] = providers[0].hits
        providers[0].down = False
        registry.get_or_create("primary").reset()
        phase("recovered")
        return summary
    finally:
        for p in providers:
            p.stop()
        exporter.shutdown()
        exporter_thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``providers.py [--requests N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=30, help="requests per phase")
    args = parser.parse_args(argv)
    summary = run(requests=args.requests)
    down = summary["scrapes"]["primary down"]
    print("\nscraped from the exporter while the primary was down:")
    for key, value in sorted(down.items()):
        if (
            "name=primary" in key
            and value
            and ("state{" in key or "calls_total" in key or "transitions" in key or "health" in key)
        ):
            print(f"  {key} = {value:g}")
    hits = summary["primary_hits_while_down"]
    print(f"the primary was hit {hits} times in all before it came back")
    return 0


if __name__ == "__main__":
    sys.exit(main())
