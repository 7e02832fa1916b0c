"""Callables for the custom-target tests (`target=custom target.fn=userfuncs:cube`; tests/ is on sys.path)."""

import math


def cube(x: float) -> float:
    return x * x * x  # x³ as the built-in target x3 computes it: the same bits


def expo(x: float) -> float:
    return math.exp(x)  # convex and increasing: fitted on [−1, 2] through the maps


def falling(x: float) -> float:
    return math.exp(-x)  # convex and decreasing: the normalisation flips its wave sign


def wiggle(x: float) -> float:
    return x * x * x - x  # neither convex nor concave on [−1, 1]


def bowl(x: float) -> float:
    return x * x  # convex, but equal end values on [−1, 1]


def ridge(x: float, y: float) -> float:
    return x * x + y * y


def broken(x: float) -> float:
    return 1.0 / (x - 0.5) if x > 0.4 else 0.0  # raises ZeroDivisionError at x = 0.5 only when 0.5 is a grid point


def log(x: float) -> float:
    return math.log(x)  # -inf... raises at x = 0


def infinite(x: float) -> float:
    return math.inf if x > 0.9 else x


def vector(x: float) -> tuple[float, float]:
    return (x, x)


CALLS = [0]


def counted(x: float) -> float:
    CALLS[0] += 1  # a slow function is evaluated once per point, though the configuration is checked twice
    return x * x


NOT_CALLABLE = 3.0


def r_cubed(x: float, y: float) -> float:
    """r³ as the built-in target r3 computes it."""
    return (x * x + y * y) ** 1.5


def cubic_minus_x(x: float) -> float:
    """x³ − x as the built-in target x3_minus_x computes it."""
    return x * x * x - x
