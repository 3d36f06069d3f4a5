"""Shared prompt prefixes: what a batch of judge prompts has in common, and which prompts
form groups (e.g. the two orders of a pair) that share more than that."""

from __future__ import annotations

from collections.abc import Sequence

_MIN_SHARED = 8  # a group prefix shorter than this is not worth a separate step


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def shared_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Tokens all prompts start with, leaving each at least one token of its own."""
    shared = min(len(p) for p in prompts) - 1
    for prompt in prompts[1:]:
        shared = min(shared, _common_prefix_len(prompts[0], prompt))
    return max(shared, 0)


def group_by_prefix(prompts: Sequence[Sequence[int]], base: int) -> list[tuple[int, list[int]]]:
    """Consecutive prompts sharing more than the first `base` tokens: (prefix length, members).

    A prefix always leaves each member at least one token of its own.
    """
    groups: list[tuple[int, list[int]]] = []
    for i, prompt in enumerate(prompts):
        if groups:
            shared, members = groups[-1]
            first = prompts[members[0]]
            common = min(shared, _common_prefix_len(first, prompt), len(prompt) - 1)
            if common >= base + _MIN_SHARED:
                groups[-1] = (common, [*members, i])
                continue
        groups.append((len(prompt) - 1, [i]))
    return groups
