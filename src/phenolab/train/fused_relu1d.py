"""Loss and exact gradients of many two-layer ReLU nets on 1-D input, without the hidden tensor.

Member e of the ensemble is f(x) = s (c2 sum_k a_k relu(u_k x + b_k) + a_0) with u_k = c1 W1[k],
a_k = W2[:, k], a_0 = b2, s the output scale and c1, c2 the layer multipliers. Neuron k is
active on a half-line of x: x > t_k = -b_k / u_k when u_k > 0, x < t_k when u_k < 0 (all x or
none when u_k = 0). With the n points sorted, its active points are a suffix [p_k, n) or a
prefix [0, p_k) of them, so with S1(i) = sum_{k active at i} a_k u_k and S0(i) = sum a_k b_k,

    f(x_i) = s (c2 (x_i S1(i) + S0(i)) + a_0),

where S1, S0 are prefix sums over the boundary indices p_k: for sign_k = +1 (suffix) or -1
(prefix), S(i) = sum_{prefix k} c_k + sum_k sign_k c_k [p_k <= i]. Backward, with the residual
g_i = dL/df_i = 2 (f_i - y_i) / (n K) (MSE without 1/2 over n points and K outputs) and the
active sums R0_k = sum_{i active} g_i, R1_k = sum_{i active} g_i x_i (prefix sums of g over the
points, read at p_k: R = T/2 + sign_k (T/2 - sum_{i < p_k}) with T the total):

    dL/dW2[:, k] = s c2 (u_k R1_k + b_k R0_k),   dL/dW1[k] = c1 s c2 a_k . R1_k,
    dL/db1[k]    = s c2 a_k . R0_k,                dL/db2     = s sum_i g_i.

A step costs O(m + n) per member instead of O(m n); sums are accumulated in float64.
Which points are active is decided exactly as torch decides it: relu'(z) = [z > 0] on the
pre-activation z = c1 (x W1[k]) + b_k rounded in the parameters' dtype. The boundaries are
found on the full sorted training set: a bucket table guesses them from the float threshold,
the exact predicate at three points fixes them, and the rare neurons it cannot fix are
counted over all points. A minibatch's boundary is the number of its points below the full
set's boundary.

Every array of size members x width is preallocated (`_Workspace`): fresh allocations of that
size come from mmap and page-fault on every step, which costs more than the arithmetic.
"""

from __future__ import annotations

import torch
from torch import Tensor

from phenolab.models.parametrization import BIAS_MULTIPLIER

_CHUNK_ELEMENTS = 64_000  # members x width per chunk: fewer ops against a working set that fits the cache


class _Workspace:
    """Named buffers reused from step to step (reallocated when the shape changes)."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, int], Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float64) -> Tensor:
        key = (name, shape[0])
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = torch.empty(shape, dtype=dtype)
            self._buffers[key] = buf
        return buf


class _Guide:
    """Where a value falls among sorted points, approximately, in O(1): a table over equal buckets.

    T[j] = #{i : x_i < lo + j h} for the B + 1 bucket edges between x_0 and x_{n-1}; a value
    in bucket j has T[j] or a few more points below it (with B = 8n, rarely more than one).
    """

    def __init__(self, x64: Tensor, per_point: int = 8) -> None:
        n = len(x64)
        self.buckets = max(1, min(per_point * n, 1 << 20))
        self.lo = float(x64[0])
        span = float(x64[-1]) - self.lo
        self.h = span / self.buckets if span > 0 else 1.0
        edges = self.lo + torch.arange(self.buckets + 1, dtype=torch.float64) * self.h
        self.table = torch.searchsorted(x64, edges, right=False)

    def guess(self, ratio: Tensor, factor: float, out: Tensor) -> Tensor:
        """p0 for the values t = factor * ratio (E, m), in place of `ratio`: T at t's bucket."""
        j = ratio.mul_(factor / self.h).sub_(self.lo / self.h)  # (t - lo) / h
        out.copy_(j).clamp_(0, self.buckets)  # nan/inf: any index, the check catches it
        return torch.gather(self.table.expand(out.shape[0], -1), 1, out, out=out)


class FusedRelu1d:
    """The fused gradient path for an ensemble of two-layer ReLU nets on 1-D inputs.

    Holds the sorted training points, the bucket table and the buffers.
    `loss_and_grads` takes the stacked parameters in `MLP` order, [W1 (E, m, 1), b1 (E, m),
    W2 (E, K, m), b2 (E, K)], without b1 if not `hidden_bias`, without b2 if not `output_bias`;
    `select` drops members that stopped.
    """

    def __init__(self, x: Tensor, y: Tensor, *, mult1: float, mult2: float, hidden_bias: bool,
                 output_bias: bool) -> None:
        if x.ndim != 2 or x.shape[1] != 1:
            raise ValueError(f"the fused ReLU path needs 1-D inputs (n, 1), got {tuple(x.shape)}")
        if not y.is_floating_point():
            raise ValueError("the fused ReLU path needs real-valued targets (MSE)")
        order = torch.argsort(x[:, 0], stable=True)
        self.rank = torch.empty_like(order)
        self.rank[order] = torch.arange(len(order))  # position of each training point in x order
        self.x = x[order, 0].contiguous()
        self.x64 = self.x.double()
        self.y64 = y.reshape(len(x), -1)[order].double().T.contiguous()  # (K, n)
        inf = torch.tensor([torch.inf], dtype=x.dtype)
        # x_{-1} = -inf, x_n = x_{n+1} = +inf: the checks at p - 1, p, p + 1 need no clamping
        self._padded = torch.cat((-inf, self.x, inf, inf))
        self.n = int(len(x))
        self._guide = _Guide(self.x64)
        self.mult1, self.mult2 = float(mult1), float(mult2)
        # positions of W1, b1, W2, b2 in the parameter list (None: no such bias)
        self._b1 = 1 if hidden_bias else None
        self._w2 = 2 if hidden_bias else 1
        self._b2 = self._w2 + 1 if output_bias else None
        self._ws = _Workspace()

    def select(self, keep: Tensor) -> None:
        """Members that stopped leave: nothing here is kept per member between steps."""

    def loss_and_grads(
        self,
        params: list[Tensor],
        scale: Tensor,
        batch: Tensor | None = None,
        grads: list[Tensor] | None = None,
    ) -> Tensor:
        """Per-member MSE (E,) in float64; with `grads` (buffers shaped like params) their gradients.

        `scale` (E,) is each member's output scale; `batch` (E, B) optional minibatch indices.
        """
        E, m = params[0].shape[0], params[0].shape[1]
        chunks = -(-E * m // _CHUNK_ELEMENTS)
        chunk = -(-E // chunks)  # equal chunks
        losses = [
            self._chunk(slice(r, min(r + chunk, E)), params, scale, batch, grads)
            for r in range(0, E, chunk)
        ]
        return torch.cat(losses)

    # ------------------------------------------------------------------ boundaries
    def _active(self, offset: int, index: Tensor, w: Tensor, b: Tensor | None, out: Tensor,
                act: Tensor) -> Tensor:
        """[z > 0] at the point x_{index + offset - 1}, z = c1 (x w) + b rounded as `MLP` rounds it."""
        padded = self._padded[offset:offset + self.n + 2].expand(index.shape[0], -1)
        z = torch.gather(padded, 1, index, out=out)
        z.mul_(w)  # F.linear of a single input is this one product
        if self.mult1 != 1.0:
            z.mul_(self.mult1)
        if b is not None:
            z.add_(BIAS_MULTIPLIER * b if BIAS_MULTIPLIER != 1.0 else b)
        return torch.gt(z, 0, out=act)

    def boundaries(self, w: Tensor, b: Tensor | None, prefix: Tensor) -> Tensor:
        """p (E, m): the first index i with q(i), q = [z(x_i) > 0] for a suffix neuron (w >= 0)
        and [z(x_i) <= 0] for a prefix neuron (w < 0); q is monotone in i since rounding is.

        A guess p0 from the float threshold -b / (c1 w) (`_Guide`), then q at p0 - 1, p0, p0 + 1
        decides p = p0 or p0 + 1 exactly; the rare neurons where it cannot (rounding at a point,
        w = 0, several points near the threshold) are counted over all points.
        """
        E, m = w.shape
        ws = self._ws
        ratio = ws.get("ratio", (E, m), w.dtype)
        ratio = torch.div(b, w, out=ratio) if b is not None else ratio.zero_()  # t = -ratio / c1
        p = self._guide.guess(ratio, -1.0 / self.mult1, out=ws.get("p", (E, m), torch.int64))
        z = ws.get("z", (E, m), w.dtype)
        before = self._active(0, p, w, b, z, ws.get("before", (E, m), torch.bool)).ne_(prefix)  # q(p0 - 1)
        at = self._active(1, p, w, b, z, ws.get("at", (E, m), torch.bool)).ne_(prefix)  # q(p0)
        after = self._active(2, p, w, b, z, ws.get("after", (E, m), torch.bool)).ne_(prefix)  # q(p0 + 1)
        p.add_(at.logical_not_())  # at now means "not q(p0)": then p = p0 + 1 if q(p0 + 1)
        wrong = before.logical_or_(at.logical_and_(after.logical_not_()))
        if bool(wrong.view(torch.uint8).max()):
            where = wrong.nonzero(as_tuple=True)
            p[where] = self._count(w[where], None if b is None else b[where], prefix[where])
        return p

    def _count(self, w: Tensor, b: Tensor | None, prefix: Tensor) -> Tensor:
        """Boundaries of the neurons w (k,), b (k,) by brute force: p = #{i : not q(i)}, O(k n)."""
        out = torch.empty(len(w), dtype=torch.int64)
        block = max(1, _CHUNK_ELEMENTS // self.n)
        for start in range(0, len(w), block):
            part = slice(start, start + block)
            z = self.x[None, :] * w[part, None]
            if self.mult1 != 1.0:
                z = self.mult1 * z
            if b is not None:
                z = z + (BIAS_MULTIPLIER * b[part] if BIAS_MULTIPLIER != 1.0 else b[part])[:, None]
            q = (z > 0) != prefix[part, None]
            out[part] = (~q).sum(1)
        return out

    # ------------------------------------------------------------------ one chunk of members
    def _chunk(self, rows: slice, params: list[Tensor], scale: Tensor, batch: Tensor | None,
               grads: list[Tensor] | None) -> Tensor:
        ws = self._ws
        W1, W2 = params[0], params[self._w2]
        b1 = None if self._b1 is None else params[self._b1][rows]
        b2 = None if self._b2 is None else params[self._b2][rows]
        w = W1[rows, :, 0]
        E, m = w.shape
        K = W2.shape[1]
        prefix = torch.lt(w, 0, out=ws.get("prefix", (E, m), torch.bool))
        p = self.boundaries(w, b1, prefix)
        if batch is None:
            n, x64, y64 = self.n, self.x64, self.y64
        else:
            # the batch in x order; its boundary = how many of its points lie below the full set's
            ranks, _ = torch.sort(self.rank[batch[rows]], dim=1)
            n = int(ranks.shape[1])
            counts = torch.zeros(E, self.n + 1, dtype=torch.int64)
            counts.scatter_(1, ranks + 1, 1)
            p = torch.gather(torch.cumsum(counts, dim=1), 1, p)
            x64 = self.x64[ranks]  # (E, B)
            y64 = self.y64[:, ranks].transpose(0, 1)  # (E, K, B)

        u = ws.get("u", (E, m)).copy_(w)
        if self.mult1 != 1.0:
            u.mul_(self.mult1)
        sign = torch.lt(w, 0, out=ws.get("sign", (E, m)))
        sign.mul_(-2.0).add_(1.0)  # +1 suffix, -1 prefix neuron
        abs_u = torch.abs(u, out=ws.get("abs_u", (E, m)))  # sign * u
        if b1 is not None:
            b = ws.get("b", (E, m)).copy_(b1)
            b_signed = torch.mul(b, sign, out=ws.get("b_signed", (E, m)))
        a = ws.get("a", (E, m))
        c = ws.get("c", (E, m))
        tmp = ws.get("tmp", (E, m))
        bins = ws.get("bins", (E, n + 1))
        s64 = scale[rows].double()
        coef = (s64 * self.mult2)[:, None]  # s c2, (E, 1)

        f = torch.empty(E, K, n, dtype=torch.float64)
        for j in range(K):
            a.copy_(W2[rows, j])
            f[:, j] = self._prefix_sum(p, a, u, abs_u, c, tmp, bins, n) * x64
            if b1 is not None:
                f[:, j] += self._prefix_sum(p, a, b, b_signed, c, tmp, bins, n)
        f.mul_(coef[:, :, None])
        if b2 is not None:
            f.add_((s64[:, None] * b2.double())[:, :, None])
        diff = f.sub_(y64)
        loss = (diff * diff).mean(dim=(1, 2))
        if grads is None:
            return loss

        g = diff.mul_(2.0 / (n * K))  # (E, K, n)
        r0 = ws.get("r0", (E, m))
        r1 = ws.get("r1", (E, m))
        G = ws.get("G", (E, n + 1))
        G[:, 0] = 0.0
        gw1 = grads[0][rows, :, 0]
        gw2 = grads[self._w2]
        gb1 = None if self._b1 is None else grads[self._b1][rows]  # views: written through out=
        gb2 = None if self._b2 is None else grads[self._b2][rows]
        for j in range(K):
            if K > 1:
                a.copy_(W2[rows, j])
            self._active_sum(g[:, j], p, sign, G, r0)
            self._active_sum(g[:, j] * x64, p, sign, G, r1)
            dz = torch.mul(u, r1, out=tmp)
            if b1 is not None:
                dz.addcmul_(b, r0)
            torch.mul(dz, coef, out=gw2[rows, j])
            if K == 1:
                torch.mul(torch.mul(a, r1, out=tmp), coef * self.mult1, out=gw1)
                if gb1 is not None:
                    torch.mul(torch.mul(a, r0, out=tmp), coef, out=gb1)
            else:  # accumulate over outputs in float64, round once
                acc1 = ws.get("acc1", (E, m))
                acc0 = ws.get("acc0", (E, m))
                if j == 0:
                    acc1.zero_()
                    acc0.zero_()
                acc1.addcmul_(a, r1)
                acc0.addcmul_(a, r0)
                if j == K - 1:
                    torch.mul(acc1, coef * self.mult1, out=gw1)
                    if gb1 is not None:
                        torch.mul(acc0, coef, out=gb1)
        if gb2 is not None:
            torch.mul(g.sum(2), s64[:, None], out=gb2)
        return loss

    @staticmethod
    def _prefix_sum(p: Tensor, a: Tensor, plain: Tensor, signed: Tensor, c: Tensor, tmp: Tensor,
                    bins: Tensor, n: int) -> Tensor:
        """S(i) = sum_{prefix k} a_k v_k + sum_k sign_k a_k v_k [p_k <= i] for i < n, (E, n).

        `plain` is v, `signed` is sign * v; sum over prefix neurons of a v = (sum a v - sum sign a v) / 2.
        """
        torch.mul(a, signed, out=c)
        bins.zero_().scatter_add_(1, p, c)
        base = (torch.mul(a, plain, out=tmp).sum(1) - c.sum(1)) * 0.5
        return torch.cumsum(bins[:, :n], dim=1).add_(base[:, None])

    @staticmethod
    def _active_sum(weights: Tensor, p: Tensor, sign: Tensor, G: Tensor, out: Tensor) -> Tensor:
        """R_k = sum over neuron k's active points of `weights` (E, n): T/2 + sign_k (T/2 - G[p_k])."""
        n = weights.shape[1]
        torch.cumsum(weights, dim=1, out=G[:, 1:])
        half_total = G[:, n:] * 0.5
        torch.gather(G, 1, p, out=out)
        torch.sub(half_total, out, out=out)
        return out.mul_(sign).add_(half_total)
