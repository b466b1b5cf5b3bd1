"""Cool-downs for models that keep failing (a circuit breaker per model, in this process).

Without one, every request pays the full cost of a broken primary again: its timeout or its error, then the
fallback. After ``failure_threshold`` consecutive failures a model is skipped for ``cooldown_seconds``; then
one request is let through, and a success closes the circuit while another failure opens it again. Rate
limits and context-length refusals are not failures here: the limiter and the context check handle those.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    open_until: float = 0.0


class CircuitBreaker:
    """Consecutive-failure counters and cool-down deadlines per model."""

    def __init__(self, failure_threshold: int = 3, cooldown_seconds: float = 30.0) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()

    def open_until(self, model: str, now: float) -> float | None:
        """When ``model``'s cool-down ends, or ``None`` when it may be called now."""
        circuit = self._circuits.get(model)
        if circuit is None or circuit.open_until <= now:
            return None
        return circuit.open_until

    def success(self, model: str) -> None:
        """A call succeeded: the model is healthy again."""
        circuit = self._circuits.get(model)
        if circuit is not None and circuit.failures:
            with self._lock:
                circuit.failures = 0
                circuit.open_until = 0.0

    def failure(self, model: str, now: float) -> bool:
        """A call failed; returns True when this failure opened the circuit."""
        with self._lock:
            circuit = self._circuits.setdefault(model, _Circuit())
            circuit.failures += 1
            if circuit.failures < self.failure_threshold:
                return False
            circuit.open_until = now + self.cooldown_seconds
        logger.warning(
            "model %s failed %d times in a row; skipping it for %.0f s",
            model,
            circuit.failures,
            self.cooldown_seconds,
        )
        return True
