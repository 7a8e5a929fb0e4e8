"""Erlang C: the waiting probability, service level and average speed of answer of an M/M/N queue.

With offered traffic A = lambda x AHT (Erlangs) and N agents (N > A):

    B(0) = 1,  B(n) = A B(n-1) / (n + A B(n-1))             (Erlang B, stable recursion)
    Pw   = C(N, A) = N B(N) / (N - A (1 - B(N)))             (Erlang C: probability to wait)
    SL(t) = P(wait <= t) = 1 - Pw exp(-(N - A) t / AHT)
    ASA  = Pw AHT / (N - A)

The closed form is C(N, A) = (A^N/N! * N/(N-A)) / (sum_{k<N} A^k/k! + A^N/N! * N/(N-A)),
A. K. Erlang (1917); see e.g. Gans, Koole & Mandelbaum, "Telephone call centers: tutorial,
review, and research prospects", MSOM 5(2), 2003, section 4.1. The recursion above avoids the
overflow of the factorials.
"""
from __future__ import annotations

import math


def erlang_b(n: int, a: float) -> float:
    if n < 0 or a < 0:
        raise ValueError("n and a must be >= 0")
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(n: int, a: float) -> float:
    """Probability that a contact waits (Pw); 1.0 when the queue is unstable (A >= N)."""
    if a >= n:
        return 1.0
    b = erlang_b(n, a)
    return n * b / (n - a * (1.0 - b))


def service_level(n: int, a: float, aht: float, t: float) -> float:
    """Fraction of contacts answered within t seconds."""
    if a >= n:
        return 0.0
    return 1.0 - erlang_c(n, a) * math.exp(-(n - a) * t / aht)


def asa(n: int, a: float, aht: float) -> float:
    """Average speed of answer (mean wait over all contacts), in the unit of aht."""
    if a >= n:
        return math.inf
    return erlang_c(n, a) * aht / (n - a)


def agents_for(a: float, aht: float, target_sl: float, t: float, max_agents: int = 100_000) -> int:
    """The fewest agents that meet the service level (e.g. 0.8 within 20 s)."""
    n = max(1, math.floor(a) + 1)
    while n <= max_agents:
        if service_level(n, a, aht, t) >= target_sl:
            return n
        n += 1
    raise ValueError("no staffing meets the target")
