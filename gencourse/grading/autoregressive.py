"""Public checks for the exercises of chapter 05 (autoregressive models).

Each check computes its reference itself (in float64 where it matters) and names the classic
mistake it sees: a causal mask whose type A keeps the centre or whose type B drops it, that keeps
the right side of the centre row or drops the rows above; colour groups taken channel by channel
modulo 3 instead of in contiguous blocks, or the (in, out) transpose; a log-likelihood summed over
the batch, normalised over the wrong axis or not normalised at all; a sampling step that takes the
argmax, samples from the raw logits, applies the temperature the wrong way or ignores the
generator; a receptive field counted without its blind spot; a bound taken for an exact
likelihood; and a trained model that is not causal (its "likelihood" is then no likelihood), was
fitted to the held-out images, or misses the target.
"""

from __future__ import annotations

import math
import numbers

from .checks import close_to, diagnose, expect, expect_close, register

#: the colours of the colour-mask exercise (R, G, B), each a contiguous block of channels
N_COLOURS = 3

# ------------------------------------------------------------------------------ 1a. spatial masks


def spatial_mask_rule(k: int, mask_type: str, *, centre: bool | None = None, right: bool = False, above: bool = True):
    """The ``(k, k)`` mask of a causal convolution in raster order as nested lists of 0/1: the rows
    above the centre, the pixels left of the centre in its row, and the centre for type B. The
    keywords build the classic wrong masks (``centre`` forced, the ``right`` side of the centre row
    kept, the rows ``above`` dropped)."""
    c = k // 2
    keep_centre = (mask_type == "B") if centre is None else centre
    rows = []
    for i in range(k):
        row = []
        for j in range(k):
            if i < c:
                v = above
            elif i == c:
                v = j < c or (j == c and keep_centre) or (j > c and right)
            else:
                v = False
            row.append(1.0 if v else 0.0)
        rows.append(row)
    return rows


def _as_float64(t):
    import torch

    return t.detach().to("cpu", torch.float64) if t.dtype != torch.bool else t.detach().cpu().double()


@register("autoregressive.spatial_mask")
def _spatial_mask(spatial_mask):
    import torch

    for k in (3, 5, 7, 1):  # k = 1 last: there, several mistakes coincide
        for mask_type in ("A", "B"):
            got = spatial_mask(k, mask_type)
            what = f"spatial_mask({k}, {mask_type!r})"
            expect(isinstance(got, torch.Tensor), f"{what} must return a torch.Tensor, got {type(got).__name__}")
            expect(tuple(got.shape) == (k, k), f"{what} has shape {tuple(got.shape)}, expected ({k}, {k})")
            got = _as_float64(got)
            want = torch.tensor(spatial_mask_rule(k, mask_type), dtype=torch.float64)
            other = "B" if mask_type == "A" else "A"
            wrong = {
                f"type {mask_type} is built like type {other}: type A (the first layer) leaves the centre OUT, so that a "
                "pixel never sees its own value; type B (later layers) keeps it, since there the centre holds features "
                "that already exclude the pixel": spatial_mask_rule(k, other),
                "the centre row keeps the pixels RIGHT of the centre: in raster order they come after the current pixel":
                    spatial_mask_rule(k, mask_type, right=True),
                "the whole centre row is kept: only the pixels left of the centre (and, for type B, the centre) come before "
                "the current pixel": spatial_mask_rule(k, mask_type, centre=True, right=True),
                "the rows above the centre are dropped: every pixel of the rows above comes before the current pixel "
                "in raster order": spatial_mask_rule(k, mask_type, above=False),
                "the mask is transposed: raster order goes row by row, so the rows ABOVE (not the columns to the left) are "
                "kept in full": [list(r) for r in zip(*spatial_mask_rule(k, mask_type))],
                "the mask is upside down: keep the rows above the centre (row index < k // 2), not those below":
                    spatial_mask_rule(k, mask_type)[::-1],
                "the mask keeps the pixels after the centre instead of before: keep row < k // 2, and in the centre row "
                "column < k // 2": [r[::-1] for r in spatial_mask_rule(k, mask_type)[::-1]],
            }
            diagnose(got, wrong, what, expected=want)
            expect_close(got, want, what=what, rtol=0, atol=1e-12,
                         hint="1 for the rows above the centre and the pixels left of it in its row; the centre is 1 "
                              "for type B only; everything after the centre in raster order is 0")


# ------------------------------------------------------------------------------ 1b. colour groups


def colour_of(c: int, channels: int, n_colours: int = N_COLOURS) -> int:
    """The colour of channel ``c`` of ``channels``: contiguous blocks of ``channels / n_colours``."""
    return c * n_colours // channels


def colour_mask_rule(in_channels: int, out_channels: int, mask_type: str, *, group=colour_of, strict: bool | None = None):
    """The ``(out, in)`` centre-pixel mask as nested lists: input channel of colour ``g_in`` feeds
    output channel of colour ``g_out`` when ``g_in < g_out`` (type A) or ``g_in <= g_out`` (type B)."""
    strict = (mask_type == "A") if strict is None else strict
    return [[1.0 if (group(i, in_channels) < group(o, out_channels) if strict else group(i, in_channels) <= group(o, out_channels))
             else 0.0 for i in range(in_channels)] for o in range(out_channels)]


def _modulo(c: int, channels: int, n_colours: int = N_COLOURS) -> int:
    return c % n_colours


@register("autoregressive.colour_mask")
def _colour_mask(colour_mask):
    import torch

    for c_in, c_out in ((3, 3), (6, 6), (3, 6), (6, 12), (12, 6), (9, 3)):
        for mask_type in ("A", "B"):
            what = f"colour_mask({c_in}, {c_out}, {mask_type!r})"
            got = colour_mask(c_in, c_out, mask_type)
            expect(isinstance(got, torch.Tensor), f"{what} must return a torch.Tensor, got {type(got).__name__}")
            if c_in != c_out and tuple(got.shape) == (c_in, c_out):
                expect(False, f"{what} has shape {tuple(got.shape)} = (in, out): a convolution's weight is indexed "
                              f"(out_channels, in_channels), so the mask must be ({c_out}, {c_in})")
            expect(tuple(got.shape) == (c_out, c_in), f"{what} has shape {tuple(got.shape)}, expected ({c_out}, {c_in})")
            got = _as_float64(got)
            want = torch.tensor(colour_mask_rule(c_in, c_out, mask_type), dtype=torch.float64)
            other = "B" if mask_type == "A" else "A"
            wrong = {
                "the channels are grouped by their index modulo 3 (R, G, B, R, G, B, ...): the colours are CONTIGUOUS blocks, "
                "channel c of C has colour c * 3 // C (the first C/3 channels are R, the next G, the last B)":
                    colour_mask_rule(c_in, c_out, mask_type, group=_modulo),
                f"type {mask_type} is built like type {other}: at the centre, type A lets a colour see only the colours "
                "BEFORE it (g_in < g_out: R sees nothing, G sees R, B sees R and G), type B also itself (g_in <= g_out)":
                    colour_mask_rule(c_in, c_out, other),
                "the mask is the transpose of the right one: entry [o, i] is 1 when input colour g(i) may feed output "
                "colour g(o), i.e. g(i) < g(o) for type A, and not the other way round":
                    [[1.0 if (colour_of(o, c_out) < colour_of(i, c_in) if mask_type == "A" else
                              colour_of(o, c_out) <= colour_of(i, c_in)) else 0.0 for i in range(c_in)] for o in range(c_out)],
            }
            diagnose(got, wrong, what, expected=want)
            expect_close(got, want, what=what, rtol=0, atol=1e-12,
                         hint="mask[o, i] = 1 when g(i) < g(o) (type A) or g(i) <= g(o) (type B), g(c) = c * 3 // channels")


# ------------------------------------------------------------------------------ 1c. log-likelihood


def _ll_inputs(B=4, L=4, C=3, H=2, W=3, seed=5):
    import torch

    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(B, L, C, H, W, generator=g, dtype=torch.float64)
    x = torch.randint(0, L, (B, C, H, W), generator=g)
    return logits, x


def reference_log_likelihood(logits, x):
    """``sum over (C, H, W) of log_softmax(logits, levels)[x]``, per image, in float64."""
    import torch

    logp = torch.log_softmax(logits.double(), 1)
    return logp.gather(1, x.long().unsqueeze(1)).flatten(1).sum(1)


@register("autoregressive.log_likelihood")
def _log_likelihood(ar_log_likelihood):
    import torch

    logits, x = _ll_inputs()
    want = reference_log_likelihood(logits, x)
    got = ar_log_likelihood(logits, x)
    expect(isinstance(got, torch.Tensor), f"ar_log_likelihood must return a torch.Tensor, got {type(got).__name__}")
    if got.ndim == 0:
        hint = ("it is the SUM over the batch: return one log-likelihood per image, shape (B,)" if close_to(got, want.sum())
                else "it is the MEAN over the batch: return one log-likelihood per image, shape (B,)"
                if close_to(got, want.mean()) else "return one log-likelihood per image, shape (B,)")
        expect(False, f"ar_log_likelihood returned a scalar: {hint}")
    expect(tuple(got.shape) == (len(x),), f"ar_log_likelihood returned shape {tuple(got.shape)}, expected ({len(x)},): "
                                          "sum over the channels and pixels of each image, keep the batch")

    def gathered(t):
        return t.gather(1, x.unsqueeze(1)).flatten(1).sum(1)

    diagnose(got, {
        "the logits are used as log-probabilities without normalising: take log_softmax over the LEVELS (dimension 1) "
        "first, then pick the observed level": gathered(logits),
        "these are probabilities, not log-probabilities: softmax without the log (use log_softmax, which is also stable)":
            gathered(torch.softmax(logits, 1)),
        "log_softmax is taken over the colour channels (dimension 2): the distribution of a pixel is over the L LEVELS, "
        "dimension 1 of (B, L, C, H, W)": gathered(torch.log_softmax(logits, 2)),
        "log_softmax is taken over the last dimension (the columns): the distribution is over the L LEVELS, dimension 1":
            gathered(torch.log_softmax(logits, -1)),
        "log_softmax is taken over the batch (dimension 0): the distribution is over the L LEVELS, dimension 1":
            gathered(torch.log_softmax(logits, 0)),
        "this is the NEGATIVE log-likelihood: return log p(x) itself (the loss is its negative)": -want,
        "the log-probabilities are averaged over the pixels: log p(x) is their SUM (the chain rule multiplies the "
        "conditionals)": torch.log_softmax(logits, 1).gather(1, x.unsqueeze(1)).flatten(1).mean(1),
        "this adds the log-probabilities of every level, not only of the observed one: pick the level x with gather":
            torch.log_softmax(logits, 1).flatten(1).sum(1),
    }, "ar_log_likelihood", expected=want)
    expect_close(got, want, what="ar_log_likelihood(logits, x)", rtol=1e-9, atol=1e-9,
                 hint="torch.log_softmax(logits, 1).gather(1, x.unsqueeze(1)).flatten(1).sum(1)")
    # stable for confident logits, and differentiable
    big = torch.zeros(2, 2, 1, 2, 2, dtype=torch.float64)
    big[:, 1] = 800.0
    xb = torch.tensor([[[[1, 1], [1, 0]]], [[[1, 1], [1, 1]]]])
    got = ar_log_likelihood(big, xb)
    expect(isinstance(got, torch.Tensor) and bool(torch.isfinite(got).all()),
           "ar_log_likelihood is not finite for logits of 800: use log_softmax, not log(softmax(...)) or exp")
    expect_close(got, reference_log_likelihood(big, xb), what="ar_log_likelihood for logits (0, 800)", rtol=1e-9, atol=1e-9)
    lg = logits.clone().requires_grad_(True)
    out = ar_log_likelihood(lg, x)
    expect(isinstance(out, torch.Tensor) and out.requires_grad,
           "ar_log_likelihood must keep the graph to the logits (no .item(), .detach() or NumPy): it is the training loss")
    (grad,) = torch.autograd.grad(out.sum(), lg)
    want_grad = torch.nn.functional.one_hot(x, logits.shape[1]).permute(0, 4, 1, 2, 3).double() - torch.softmax(logits, 1)
    expect_close(grad, want_grad, what="the gradient of sum(ar_log_likelihood) with respect to the logits", rtol=1e-6,
                 atol=1e-9, hint="d log softmax(l)[x] / d l = onehot(x) - softmax(l)")


# ------------------------------------------------------------------------------ 1d. sampling step


def _binomial_ok(counts, probs, n, z=5.0):
    """Every count within ``z`` binomial standard deviations of ``n p`` (and never where p = 0)."""
    return all(abs(c - n * p) <= z * math.sqrt(n * p * (1 - p)) + 1e-9 for c, p in zip(counts, probs))


def _chi2(counts, probs, n):
    return sum((c - n * p) ** 2 / (n * p) for c, p in zip(counts, probs) if p > 0) + (
        math.inf if any(c > 0 and p == 0 for c, p in zip(counts, probs)) else 0.0)


def _draw(sample_step, logits, seed, temperature=None):
    import torch

    g = torch.Generator().manual_seed(seed)
    out = sample_step(logits, g) if temperature is None else sample_step(logits, g, temperature=temperature)
    B, L = logits.shape
    expect(isinstance(out, torch.Tensor), f"sample_step must return a torch.Tensor of levels, got {type(out).__name__}")
    if tuple(out.shape) == (B, 1):
        expect(False, f"sample_step returned shape ({B}, 1): return one level per row, shape ({B},) (squeeze(1) the "
                      "output of torch.multinomial)")
    expect(tuple(out.shape) == (B,), f"sample_step returned shape {tuple(out.shape)}, expected ({B},) (one level per row)")
    expect(not out.is_floating_point() and out.dtype != torch.bool,
           f"sample_step must return integer levels (int64), got {str(out.dtype).replace('torch.', '')}")
    expect(bool(((out >= 0) & (out < L)).all()), f"sample_step returned levels outside 0..{L - 1}")
    return out.long()


@register("autoregressive.sample_step")
def _sample_step(sample_step):
    import torch

    # positive logits, so that sampling in proportion to the raw logits runs (and is named) instead of raising
    base = torch.tensor([[1.2, 0.4, 0.3, 2.0], [0.1, 1.5, 0.5, 0.9]], dtype=torch.float64)
    n = 20_000
    logits = base.repeat(n, 1)  # rows alternate between the two distributions: (2n, 4)
    for temperature in (None, 0.5, 2.0):
        T = 1.0 if temperature is None else temperature
        out = _draw(sample_step, logits, 11, temperature)
        for r in range(2):
            draws = out[r::2]
            counts = torch.bincount(draws, minlength=4).tolist()
            want = torch.softmax(base[r] / T, 0).tolist()
            if _binomial_ok(counts, want, n):
                continue
            wrong = {
                "this is the argmax (the most likely level), not a sample: draw with torch.multinomial(probs, 1, "
                "generator=generator)": torch.nn.functional.one_hot(base[r].argmax(), 4).double().tolist(),
                "this samples in proportion to the raw logits: draw from softmax(logits / T), the normalised exponentials":
                    (base[r] / base[r].sum()).tolist(),
                "softmax is taken over the batch (dimension 0): each row's distribution is over its L levels, dimension 1":
                    (lambda w: (w / w.sum()).tolist())(torch.softmax(torch.stack([base[0], base[1]] * 10) / T, 0)[r]),
                "the temperature multiplies the logits: divide them by it, softmax(logits / T) (T < 1 sharpens, T > 1 "
                "flattens)": torch.softmax(base[r] * T, 0).tolist(),
                "the temperature is ignored: draw from softmax(logits / temperature)": torch.softmax(base[r], 0).tolist(),
                "every level is drawn equally often: the probabilities are softmax(logits / T)": [0.25] * 4,
            }
            closest = min(wrong.items(), key=lambda kv: _chi2(counts, kv[1], n))
            freq = ", ".join(f"{c / n:.3f}" for c in counts)
            expect(False, f"with temperature {T:g}, the frequencies of the levels over {n} draws of one row are [{freq}], "
                          f"expected softmax(logits / T) = [{', '.join(f'{p:.3f}' for p in want)}] (each within 5 binomial "
                          "standard deviations)" + (f"; {closest[0]}" if _chi2(counts, closest[1], n) < _chi2(counts, want, n)
                                                    else ""))
    # reproducible with the generator, and only from it
    small = base.repeat(50, 1)
    torch.manual_seed(1)
    a = _draw(sample_step, small, 3)
    torch.manual_seed(2)
    b = _draw(sample_step, small, 3)
    expect(torch.equal(a, b), "two calls with generators seeded alike gave different draws: draw with the generator you "
                              "are given (torch.multinomial(..., generator=generator)), not the global random state")
    c = _draw(sample_step, small, 4)
    expect(not torch.equal(a, c), "generators seeded differently gave the same draws: the draws must come from the generator")
    big = torch.tensor([[900.0, 0.0, -900.0]], dtype=torch.float64).repeat(64, 1)
    try:
        out = _draw(sample_step, big, 5)
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(f"for logits (900, 0, -900) sample_step raised {type(exc).__name__} ({exc}): compute the "
                             "probabilities with torch.softmax, which is stable, not with exp(logits)") from None
    expect(bool((out == 0).all()), "for logits (900, 0, -900) every draw must be level 0: compute the probabilities with "
                                   "torch.softmax (stable), not exp(logits) / sum")


# ------------------------------------------------------------------------------ 2a. receptive field

#: the stack of the exercise: ``(kernel_size, mask_type)``, first layer first
STACK = ((5, "A"), (3, "B"), (3, "B"))
#: the two pixels of the yes/no questions, as offsets (rows, columns) from the output pixel (i, j)
ASKED = ((-1, 3), (-3, 4))


def _offsets(k: int, mask_type: str, **kw) -> set:
    c = k // 2
    rows = spatial_mask_rule(k, mask_type, **kw)
    return {(i - c, j - c) for i in range(k) for j in range(k) if rows[i][j]}


def field_of(stack=STACK, **kw) -> set:
    """The offsets ``(di, dj)`` of the input pixels that the output at ``(i, j)`` depends on, away
    from the borders: the Minkowski sum of the layers' kept offsets, from the last layer back."""
    field = {(0, 0)}
    for k, t in reversed(tuple(stack)):
        field = {(a + c, b + d) for a, b in field for c, d in _offsets(k, t, **kw)}
    return field


def blind_spot(field: set) -> set:
    """The pixels of the field's bounding box that come before ``(0, 0)`` in raster order but are
    not in the field."""
    if not field:
        return set()
    rows = [a for a, _ in field]
    cols = [b for _, b in field]
    box = {(a, b) for a in range(min(rows), max(rows) + 1) for b in range(min(cols), max(cols) + 1)}
    return {(a, b) for a, b in box if (a < 0 or (a == 0 and b < 0)) and (a, b) not in field}


def receptive_field_answers(stack=STACK) -> tuple[int, int, bool, bool]:
    """``(n_field, n_blind, sees_first, sees_second)`` of the exercise."""
    f = field_of(stack)
    return len(f), len(blind_spot(f)), ASKED[0] in f, ASKED[1] in f


def _integer(value, name: str) -> int:
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            expect(False, f"{name} must be one number, got {type(value).__name__} of shape {tuple(getattr(value, 'shape', ()))}")
    expect(isinstance(value, numbers.Real) and not isinstance(value, bool), f"{name} must be a number (an int), got "
                                                                          f"{type(value).__name__}")
    expect(math.isfinite(float(value)) and float(value) == int(float(value)), f"{name} = {value}: a number of pixels is whole")
    return int(float(value))


def _boolean(value, name: str) -> bool:
    if hasattr(value, "item") and not isinstance(value, (bool, int)):
        value = value.item()
    expect(isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)),
           f"{name} must be True or False, got {value!r}")
    return bool(value)


@register("autoregressive.receptive_field")
def _receptive_field(n_field, n_blind, sees_first, sees_second):
    got_field, got_blind = _integer(n_field, "n_field"), _integer(n_blind, "n_blind")
    s1, s2 = _boolean(sees_first, "sees_first"), _boolean(sees_second, "sees_second")
    field = field_of()
    want_field, want_blind = len(field), len(blind_spot(field))
    rows = [a for a, _ in field]
    cols = [b for _, b in field]
    box_before = sum(1 for a in range(min(rows), 1) for b in range(min(cols), max(cols) + 1) if a < 0 or b < 0)
    side = 1 + sum(k - 1 for k, _ in STACK)
    if got_field != want_field:
        all_a = len(field_of(centre=False))
        wrong = {
            box_before: "this counts every pixel of the bounding box that comes before (i, j): the stack has a BLIND SPOT, "
                        "pixels up and to the right that no path of masked kernels reaches",
            side * side: f"this is the {side} x {side} field of unmasked convolutions: the masks keep only the pixels "
                         "before the centre",
            all_a: "this treats every layer as type A: the later layers are type B and keep their centre (the features "
                   "there already exclude the current pixel)",
            want_field + 1: "this counts the output pixel (i, j) itself: the first layer is type A, so the output never "
                            "depends on its own pixel",
        }
        expect(False, f"n_field = {got_field}: " + wrong.get(got_field, "not the number of pixels this stack sees: add up "
                                                              "the offsets layer by layer, from the output back"))
    if got_blind != want_blind:
        hint = ("0 would mean no blind spot: look at the pixels up and to the right of (i, j), close to its row"
                if got_blind == 0 else "count the pixels of the bounding box of the field that come before (i, j) in "
                                       "raster order but that the output does not depend on")
        expect(False, f"n_blind = {got_blind}: {hint}")
    reached = ("IS reached: find one path, an offset kept by the 5 x 5 type-A mask plus one kept by each 3 x 3 type-B mask "
               "(the up-right step (-1, +1) of a type-B mask moves the field right as it moves it up)")
    missed = ("is NOT reached, although it comes before (i, j) in raster order: it lies in the blind spot (no layer's "
              "kernel steps right without also stepping up)")
    for got, (di, dj), name in ((s1, ASKED[0], "sees_first"), (s2, ASKED[1], "sees_second")):
        want = (di, dj) in field
        expect(got == want, f"{name} = {got}: pixel (i{di:+d}, j{dj:+d}) " + (reached if want else missed))


# ------------------------------------------------------------------------------ 2b. decide: exact likelihood

EXACT_ANSWER = "b"
_EXACT_WHY = {
    "a": "the IWAE bound is a lower bound on log p(x): it tightens as K grows, but it is exact only in the limit (and "
         "its estimate is random); an autoregressive model's log p(x) is exact by the chain rule",
    "c": "a GAN has no density to evaluate: its generator pushes a Gaussian onto a thin set of images, and the "
         "discriminator's logit is not a log-likelihood",
    "d": "the IWAE bound is a bound, not the exact log p(x) (exact only as K goes to infinity)",
}


def sampling_passes(shape) -> int:
    """The number of forward passes :func:`gencourse.models.autoregressive.sample` makes to draw a
    batch of images of ``shape`` ``(C, H, W)``, counted on a model that returns zero logits."""
    import torch

    from gencourse.models import autoregressive as ar

    class Counting(torch.nn.Module):
        levels = 2

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))
            self.calls = 0

        def forward(self, x, y=None):
            self.calls += 1
            return torch.zeros(len(x), 2, *x.shape[1:])

    m = Counting()
    ar.sample(m, 1, tuple(shape), generator=torch.Generator().manual_seed(0))
    return m.calls


#: the colour images of the sampling question
SAMPLE_SHAPE = (3, 32, 32)


@register("autoregressive.exact_likelihood")
def _exact_likelihood(answer, reason, sample_passes):
    expect(isinstance(answer, str), f"answer must be a letter as a string ('a', 'b', 'c' or 'd'), got {type(answer).__name__}")
    letter = answer.strip().strip("().").strip().lower()
    expect(letter in ("a", "b", "c", "d"), f"answer must be one of 'a', 'b', 'c', 'd', got {answer!r}")
    expect(isinstance(reason, str) and len(reason.strip()) >= 10, "reason must say in one line why (a string of at least a "
                                                                  "few words)")
    expect(letter == EXACT_ANSWER, _EXACT_WHY.get(letter, ""))
    passes = _integer(sample_passes, "sample_passes")
    C, H, W = SAMPLE_SHAPE
    want = sampling_passes(SAMPLE_SHAPE)
    wrong = {
        1: "one pass gives all the conditionals of an image that is already known (training, evaluation); to SAMPLE, each "
           "value must be drawn before the next conditional can be computed",
        H * W: f"{H * W} is one pass per pixel: within a pixel, the {C} colours are drawn one after the other too "
               "(G depends on R, B on R and G)",
        C: "the colours of one pixel depend on the pixels before it: the passes go pixel by pixel, and colour by colour",
    }
    expect(passes == want, f"sample_passes = {passes}: " + wrong.get(passes, f"one pass per value drawn: a {C} x {H} x {W} "
                                                                             "image has C * H * W values"))


# ------------------------------------------------------------------------------ 3. train: MADE

#: held-out exact NLL of the trained model, nats per image (graded under the cpu profile)
NLL_TARGET = 110.0
#: how many pixels' predictions the causality test compares, per base image
_D = 28 * 28


def _model_as_module(model):
    """The student's model (any callable: levels ``(B, 1, 28, 28)`` -> logits ``(B, 2, 1, 28, 28)``)
    as a module that :func:`gencourse.models.autoregressive.log_likelihood` can call."""
    import torch

    class AsModule(torch.nn.Module):
        levels = 2

        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))  # log_likelihood reads the device from a parameter

        def forward(self, x, y=None):
            out = model(x)
            expect(isinstance(out, torch.Tensor) and tuple(out.shape) == (len(x), 2, 1, 28, 28),
                   f"model(x) for levels x of shape {tuple(x.shape)} must return logits of shape ({len(x)}, 2, 1, 28, 28), "
                   f"got {tuple(getattr(out, 'shape', ())) or type(out).__name__}")
            expect(out.is_floating_point() and bool(torch.isfinite(out).all()), "model(x) returned logits that are not finite")
            return out.detach().to("cpu", torch.float64)

    return AsModule()


def causality_violations(model, base) -> list[tuple[int, int, float]]:
    """Brute force: for each pixel ``d`` of the binary image ``base`` ``(1, 28, 28)``, flip it and
    record the pixels ``e <= d`` (raster order) whose predicted distribution (log-softmax over the
    levels) changed by more than 1e-4. Returns ``(d, e, change)`` of the largest change per ``d``."""
    import torch

    flips = base.flatten().repeat(_D + 1, 1)  # row 0 is the base image, row d + 1 has pixel d flipped
    idx = torch.arange(_D)
    flips[idx + 1, idx] = 1 - flips[idx + 1, idx]
    logp = torch.cat([torch.log_softmax(model(part.view(-1, 1, 28, 28)), 1)
                      for part in flips.split(400)]).flatten(2)  # (D + 1, 2, D)
    change = (logp[1:] - logp[:1]).abs().amax(1)  # (D, D): [d, e] = change of pixel e's prediction when d flips
    before_or_at = idx[None, :] <= idx[:, None]  # e <= d
    change = torch.where(before_or_at, change, torch.zeros_like(change))
    worst, where = change.max(1)
    return [(d, int(where[d]), float(worst[d])) for d in range(_D) if worst[d] > 1e-4]


def _pixel(d: int) -> str:
    return f"({d // 28}, {d % 28})"


def heldout_nll(model, *, n_train: int = 1000) -> dict:
    """The exact NLL (nats per image, mean) of the student's model on the 1,000 held-out binarised
    images and on the first ``n_train`` training images, computed with
    :func:`gencourse.models.autoregressive.log_likelihood` from the model's logits."""
    import torch

    from gencourse.models import autoregressive as ar
    from gencourse.recipes.autoregressive import binarised_mnist

    m = _model_as_module(model)
    x_test, _ = binarised_mnist("test")
    x_train, _ = binarised_mnist("train")
    with torch.no_grad():
        test = -ar.log_likelihood(m, x_test, batch_size=250).mean().item()
        train = -ar.log_likelihood(m, x_train[:n_train], batch_size=250).mean().item()
    return {"test": test, "train": train, "gap": test - train}


@register("autoregressive.made")
def _made(model, losses):
    import torch

    from gencourse.recipes.autoregressive import binarised_mnist

    from ._training import expect_losses_went_down, expect_target, profile

    expect(callable(model), f"model must be your trained network (callable on levels), got {type(model).__name__}")
    if profile() == "smoke":
        expect(isinstance(losses, (list, tuple)) and len(losses) >= 5 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in losses),
            "losses must hold a finite float (loss.item()) for every step")
    else:
        expect_losses_went_down(losses, min_steps=100)
    # causal: the prediction of a pixel never depends on that pixel or on the ones after it
    x_test, _ = binarised_mnist("test")
    g = torch.Generator().manual_seed(50)
    bases = [x_test[int(torch.randint(0, len(x_test), (1,), generator=g))],
             (torch.rand(1, 28, 28, generator=g) < 0.3).long()]
    with torch.no_grad():
        a, b = model(x_test[:8]), model(x_test[:8])
    expect(isinstance(a, torch.Tensor) and tuple(a.shape) == (8, 2, 1, 28, 28),
           f"model(x) for levels x of shape (8, 1, 28, 28) must return logits of shape (8, 2, 1, 28, 28), got "
           f"{tuple(getattr(a, 'shape', ())) or type(a).__name__}")
    expect(isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b),
           "model(x) gives different logits for the same x: put it in eval mode (model.eval()) and draw nothing at random "
           "in its forward pass")
    for base in bases:
        with torch.no_grad():
            bad = causality_violations(model, base)
        if bad:
            d, e, size = max(bad, key=lambda t: t[2])
            same = " (its own value: the first mask must exclude the pixel itself, type A / degree > d)" if d == e else ""
            expect(False, f"the model is not causal: flipping pixel {_pixel(d)} changes the predicted distribution of pixel "
                          f"{_pixel(e)} by {size:.3g}{same}, which comes at or before it in raster order ({len(bad)} of the "
                          f"{_D} pixels change a prediction they must not). The chain rule needs p(x_i | x_<i): a "
                          "model that sees x_i or later pixels gives a low loss that is not a likelihood")
    s = heldout_nll(model)
    print(f"  exact NLL: held-out {s['test']:.2f} nats per image, training images {s['train']:.2f}")
    expect(math.isfinite(s["test"]) and math.isfinite(s["train"]), "the model's NLL is not finite")
    if profile() != "smoke":
        expect(s["gap"] > 0, f"the model fits the held-out images better ({s['test']:.2f} nats) than the training images "
                             f"({s['train']:.2f}): was it trained on the test split? Train on binarised_mnist('train') only")
    expect_target(s["test"], NLL_TARGET, what="held-out exact NLL (nats per image)", below=True,
                  hint="train longer, with a larger batch or learning rate (Adam 1e-3 to 3e-3 with a cosine decay works)")
