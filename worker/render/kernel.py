"""The avatar model's per-frame tensor math, compiled with TorchScript.

Why compiled: an eager torch op releases the GIL while it computes and must take it
back before the next op. A batch is some 500 ops, and the worker's event loop (pacing,
face drivers, JPEG) holds the GIL for milliseconds at a time, so each op could wait up
to the interpreter's switch interval (5 ms) for it: beside a thread running pure
Python, a render of eight standard frames took many times its own length. A
TorchScript function runs its graph in C++ with the GIL released: beside the same
thread, a batch waits for it about a dozen times, not ~500 (``bench/render.py`` times
both).

Only tensors, numbers and lists cross this boundary; ``worker.render_torch`` prepares
them (which avatar, where each mouth and eye is) and reads the frames back. The ops and
their order are those of the eager model, so a frame is the same bytes.
"""

from __future__ import annotations

import warnings
from typing import List, Tuple  # noqa: UP035 — TorchScript reads these, not list/tuple

import torch
import torch.nn.functional as F
from torch import Tensor

# The coefficients' columns are worker.render.renderer.BASIS: open 0, round 1, press 2,
# gaze x 3, gaze y 4, yaw 5, pitch 6, roll 7, blink 8, breath 9, lip raise 10, lip
# tuck 11 (literals here: TorchScript does not read module-level ints).

# One distinct avatar of a batch: its warp source (RGB + person mask), its fields (head,
# roll, open, round, press, gaze, breath, lid rows, backdrop, raise, tuck), its scales
# (head x, head y, gaze x, gaze y, roll pivot x) and its ints (mouth fields' slack, eye
# fields' padding, the source's margin, the first and end columns of the lid rows that
# hold an eye).
Warp = Tuple[Tensor, List[Tensor], List[float], List[int]]  # noqa: UP006


def _rows_shifted(field: Tensor, shifts: List[int], slack: int, rows: int) -> Tensor:  # noqa: UP006
    """``field`` moved down by each frame's shift (rows): [n, rows, w, 1], or one view."""
    cuts: List[Tensor] = []  # noqa: UP006
    same = True
    for k in shifts:
        same = same and k == shifts[0]
        k = max(-slack, min(slack, k))
        cuts.append(field[slack - k : slack - k + rows])
    if same:
        return cuts[0]
    return torch.stack(cuts)


def _lid_shift(lids: Tensor, moves: List[List[int]], pad: int, u0: int, u1: int,  # noqa: UP006
               closing: Tensor, lift: Tensor, v: Tensor) -> Tuple[Tensor, Tensor]:  # noqa: UP006
    """Each frame's vertical sampling shift (pixels) on the eye band's columns u0…u1: the
    lids' warp; and the shade of the lash line where the lids meet (a closed eye's
    crease is in shadow).

    Rows from the lid skin's top down to the upper lid's edge show the skin above the
    lid contour stretched down; rows from the lower lid's edge to the lower skin show
    that skin pushed up; the eye between them is uncovered, unmoved. ``lift``: where
    the head carries the lid rows, per frame and column ([n, 1, u1 - u0]).
    """
    cuts: List[Tensor] = []  # noqa: UP006
    for m in moves:
        dx = max(-pad, min(pad, m[1]))
        cuts.append(lids[:, pad - dx + u0 : pad - dx + u1])
    at = torch.stack(cuts) + lift  # [n, 5, cols]
    top, up, close, lo = at[:, 0:1], at[:, 1:2], at[:, 2:3], at[:, 3:4]
    bot = at[:, 4:5]
    b = closing[:, None, None]
    edge = up + b * (close - up)
    low = lo - b * (lo - close)
    # The lash line (the band just above the contour) moves down whole; the skin above
    # it stretches. Below, the lower lid's rim rises whole, its skin stretches.
    lash = 0.12 * (lo - up) + 0.5
    upper = (up - edge) * ((v - top) / (edge - lash - top).clamp(min=1e-3)).clamp(max=1)
    lower = (lo - low) * ((bot - v) / (bot - low - 0.5 * lash).clamp(min=1e-3)).clamp(max=1)
    over = ((v >= top) & (v < edge)).float()
    under = ((v >= low) & (v <= bot)).float()
    span = ((close - up) > 0.3).float()
    width = 0.05 * (lo - up) + 0.6
    # Under a glasses rim or a low brow (little lid skin above the contour) the crease
    # where the lids meet is shaded less: the rim's own shadow is there already, and a
    # dark crease under it read as a lid still open (measured: the shut eye's aspect
    # ratio behind glasses 0.106 with the full shade, 0.088 with it lightened).
    thin = (1 - (up - top) / (0.6 * (lo - up)).clamp(min=1.0)).clamp(0, 1)
    shade = 1 - (0.35 - 0.2 * thin) * b * span * torch.exp(-(((v - edge) / width) ** 2))
    # Where the lid's skin is stretched far (a thin band under a brow or a glasses rim),
    # each column would show as a streak: those rows are blurred along the lid as much.
    stretch = (edge - lash - top) / (up - lash - top).clamp(min=1.0)
    smear = over * ((stretch - 1.2) / 1.5).clamp(0, 1)
    return upper * over + lower * under, torch.stack((shade, smear), 1)


def _grid(base: Tensor, fields: List[Tensor], scales: List[float], ints: List[int],  # noqa: UP006
          c: Tensor, shifts: List[int], eye_moves: List[List[int]],  # noqa: UP006
          lifts: Tensor, bands: List[int],  # noqa: UP006
          ) -> Tuple[Tensor, Tensor, List[int], List[int]]:  # noqa: UP006
    """Base grid plus each field times its coefficient, in planes (x, y: [n, 2, rh, rw]);
    the lids' shade and blur on the eye band ([k, 2, re, u1 - u0], empty when no frame
    blinks), the k frames it is for, and its columns (u0, u1).

    Built in planes, where every term runs over whole contiguous rows; each span that is
    sampled is interleaved for ``grid_sample`` on its own (:func:`_render`). A field whose
    coefficients are all zero is skipped: adding zero changes no bit, so a frame is the
    same whatever else shares its batch.
    """
    head, roll, open_, round_, press = fields[0], fields[1], fields[2], fields[3], fields[4]
    gaze, breath, lids = fields[5], fields[6], fields[7]
    slack, pad, margin = ints[0], ints[1], ints[2]
    rh, rw = base.shape[1], base.shape[2]
    out = torch.empty(c.shape[0], 2, rh, rw)
    used = (c != 0).any(dim=0)
    if bool(used[5]) or bool(used[6]):
        turn = torch.stack((c[:, 5] * scales[0], c[:, 6] * scales[1]), -1)
        torch.addcmul(base[None], turn[:, :, None, None], head[None, None], out=out)
    else:
        out.copy_(base[None].expand_as(out))
    if bool(used[7]):
        out.addcmul_(c[:, 7, None, None, None], roll)
    if bool(used[9]):
        out[:, 1].addcmul_(c[:, 9, None, None], breath)
    lower = out[:, :, bands[0] :]
    rows = lower.shape[2]
    mouth = ((0, open_, 1), (1, round_, 0), (2, press, 1), (10, fields[9], 1),
             (11, fields[10], 1))
    same = True
    for k in shifts:
        same = same and k == shifts[0]
    for k, field, channel in mouth:
        if bool(used[k]) and same:
            shifted = _rows_shifted(field, shifts, slack, rows)
            lower[:, channel].addcmul_(c[:, k, None, None], shifted)
        elif bool(used[k]):
            # Lips at different rows: each frame adds its own cut of the field (no stacked
            # copy), and a frame whose coefficient is 0 adds nothing.
            for f in range(c.shape[0]):
                if float(c[f, k]) != 0.0:
                    shifted = _rows_shifted(field, shifts[f : f + 1], slack, rows)
                    lower[f, channel].addcmul_(c[f, k], shifted)
    band = out[:, :, bands[1] : bands[2]]
    shade = torch.empty(0)
    spots: List[int] = []  # noqa: UP006
    cols: List[int] = [0, 0]  # noqa: UP006
    if bool(used[3]) or bool(used[4]):
        look = torch.stack((c[:, 3] * scales[2], c[:, 4] * scales[3]), -1)
        rows_e = band.shape[2]
        for f in range(c.shape[0]):  # each frame's eyes where its head carries them
            dy = max(-pad, min(pad, eye_moves[f][0]))
            dx = max(-pad, min(pad, eye_moves[f][1]))
            cut = gaze[pad - dy : pad - dy + rows_e, pad - dx : pad - dx + rw]
            band[f].addcmul_(look[f][:, None, None], cut[None])
    if bool(used[8]):
        # Only the frames that blink, on the columns their eyes can be at (elsewhere the
        # shift is 0 and the shade 1, to the bit): [k, re, u1 - u0], k frames.
        blinking: List[int] = []  # noqa: UP006
        moves: List[List[int]] = []  # noqa: UP006
        u0, u1 = rw, 0
        for f in range(c.shape[0]):
            if float(c[f, 8]) != 0.0:
                blinking.append(f)
                moves.append(eye_moves[f])
                dx = max(-pad, min(pad, eye_moves[f][1]))
                u0 = min(u0, max(0, ints[3] - pad + dx))
                u1 = max(u1, min(rw, ints[4] - pad + dx))
        if u1 > u0:
            at = torch.tensor(blinking)
            v = torch.arange(bands[1], bands[2], dtype=torch.float32)[:, None]
            u = torch.arange(u0, u1, dtype=torch.float32)[None, :]
            lift = lifts[at, 0:1, None] + lifts[at, 1:2, None] * (u - scales[4])  # [k, 1, cols]
            shift, shaded = _lid_shift(lids, moves, pad, u0, u1, c[at, 8], lift, v)
            shift = shift * (2.0 / (rh + 2 * margin))
            for i in range(len(blinking)):
                band[blinking[i], 1, :, u0:u1].add_(shift[i])
            shade = shaded
            spots = blinking
            cols = [u0, u1]
    return out, shade, spots, cols


def _ramp(x: Tensor, soft: Tensor) -> Tensor:
    """0 → 1 across an edge at x = 0, as steep as the portrait's edges (1/soft at most)
    and without kinks (a linear ramp's corners read as sharper than any photo edge)."""
    t = (x / (1.5 * soft) + 0.5).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _mouth_paint(prm: Tensor, v: Tensor, u: Tensor, grain: Tensor, columns: Tensor,
                 ) -> Tuple[Tensor, Tensor]:  # noqa: UP006
    """Inner mouth, teeth and tongue of every open mouth on its patch: (keep, paint).

    The gap opens between the upper lip (lifted, raised) and the lower lip (dropped with
    the jaw). A portrait that shows its teeth keeps them (the upper row stays with the
    skull, the lower one travels in the warp with the jaw): only the cavity between is
    drawn. Otherwise an upper row hangs from the top edge and a lower row rises from the
    bottom one, shaded darker to the corners. The cavity darkens to the back, the tongue
    lies low (its tip up when shown), and the portrait's own grain is added throughout.
    """
    mx, a, drop = prm[:, 0:1], prm[:, 2:3], prm[:, 3:4]
    # Per column of the patch: where the jaw parts the lips (the lip line, but in a
    # smile's dark corners), and where the portrait shows its upper teeth.
    my, shows = columns[:, 0:1], columns[:, 1:2]
    opening, rounding = prm[:, 4:5], prm[:, 5:6]
    inner, lips, enamel = prm[:, 6:9], prm[:, 9:12], prm[:, 12:15]
    lifted, tuck, tongue_up = prm[:, 15:16], prm[:, 16:17], prm[:, 17:18]
    own, noise, lip, soft = prm[:, 18:19], prm[:, 19:20], prm[:, 20:21], prm[:, 21:22]
    a_eff = a * (1 - 0.25 * rounding)
    narrow = torch.exp(-(((u - mx) / (0.85 * a_eff)) ** 6))  # as the jaw field: ~0 at the corners
    drawn = 1 - own  # a portrait showing its teeth has them already, fixed to the skull
    top = my - (0.2 * drop * opening * drawn + 0.6 * lip * lifted) * narrow
    # The portrait's own teeth end at the line: the gap's soft edge starts below it, so
    # their lower edge is not shaded over. Beside them, in a smile's dark corners, it
    # starts above the parting (by up to half the tear): the rows the jaw tears open
    # there sample what lies above the corner, which would show through the soft edge.
    tear = drop * opening * narrow
    top = top + own * (0.75 * soft * shows - (1 - shows) * torch.minimum(soft, 0.5 * tear))
    bottom = my + tear
    gap = (bottom - top).clamp(min=1e-3)
    # Edges as soft as the portrait's own (``soft`` pixels: a crisp paint on a soft photo
    # looks pasted); columns where the gap is under a pixel fade out.
    alpha = _ramp(v - top, soft) * _ramp(bottom - v, soft) * gap.clamp(max=1)
    rel = ((v - top) / gap).clamp(0, 1)
    depth = 1.0 - 0.55 * torch.exp(-(((rel - 0.45) / 0.3) ** 2)) * narrow
    colour = inner * depth
    centre = 1.0 - 0.45 * tongue_up
    tongue = torch.exp(-(((rel - centre) / 0.25) ** 2)) * narrow * (0.6 + 0.4 * tongue_up)
    colour = colour * (1 - tongue) + lips * 0.75 * tongue
    corners = 0.55 + 0.45 * narrow
    upper = _ramp(top + torch.minimum(0.4 * gap, 0.3 * a) - v, soft)
    lower = _ramp(v - bottom + torch.minimum(0.15 * gap, 0.12 * a), soft)
    # A portrait that shows its upper teeth keeps them; its lower row, hidden behind the
    # lower lip in the photo, rises from the gap's foot as the jaw opens like any other.
    show = (upper * drawn + lower).clamp(0, 1) * (narrow * 1.6).clamp(0, 1)
    # The upper teeth's edge catches the light; the gap between teeth rows is shadow. In
    # a narrow opening the teeth lie in the lips' shade (lit full white, a syllable's
    # teeth stood out of a soft portrait so far that only a blur washing out its mouth
    # brought them to its sharpness).
    lit = 0.7 + 0.3 * (opening / 0.8).clamp(0, 1)
    teeth = enamel * corners * lit * (1.0 - 0.12 * ((v - top) / (0.3 * a)).clamp(0, 1))
    # Separate teeth: a faint shadow between neighbours, the incisors widest.
    spacing = 0.34 * a * (1.0 - 0.3 * ((u - mx).abs() / a).clamp(0, 1))
    seams = torch.cos(3.14159265 * (u - mx) / spacing) ** 16
    teeth = teeth * (1.0 - 0.12 * seams)
    paint = colour * (1 - show) + teeth * show
    paint = paint + noise * grain * (paint / 160.0).clamp(max=1.0)  # grain as bright as it
    # f / v: the upper teeth rest on the tucked lower lip, over it.
    rest = tuck * drawn * narrow * (my + 0.35 * lip - v + 0.5).clamp(0, 1) * (v - top + 0.5
                                                                              ).clamp(0, 1)
    cover = (alpha + rest - alpha * rest).clamp(0, 1)
    mixed = (paint * alpha + enamel * corners * rest * (1 - alpha)) / cover.clamp(min=1e-3)
    # As sharp as the portrait's own mouth (``worker.render.sharpness``: the layer blurred,
    # premultiplied with its cover; the grain too, which the measure of it over-reads on
    # a textured face).
    layer = _soften(torch.cat((1 - cover, (mixed + 0.5) * cover), 1), prm[:, 22, 0, 0])
    return layer[:, :1], layer[:, 1:]  # +0.5: see the source


def _soften(t: Tensor, sigma: Tensor) -> Tensor:
    """``t`` ([k, c, h, w]) blurred per patch by its own Gaussian σ ([k], pixels)."""
    k, c, h, w = t.shape[0], t.shape[1], t.shape[2], t.shape[3]
    r = 5
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    taps = torch.exp(-0.5 * (x[None, :] / sigma[:, None].clamp(min=0.2)) ** 2)
    taps = (taps / taps.sum(1, keepdim=True)).repeat_interleave(c, 0)  # [k·c, 2r + 1]
    flat = F.pad(t.reshape(1, k * c, h, w), (r, r, 0, 0), mode="replicate")
    flat = F.conv2d(flat, taps[:, None, None, :], groups=k * c)
    flat = F.pad(flat, (0, 0, r, r), mode="replicate")
    flat = F.conv2d(flat, taps[:, None, :, None], groups=k * c)
    return flat.view(k, c, h, w)


def _unsqueeze(views: List[Tensor], grids: List[Tensor], moving: List[List[int]],  # noqa: UP006
               size: List[int], step: float) -> None:  # noqa: UP006
    """Smooth each moving mouth's patch where its warp squeezes the rows (in place).

    Lips closing over a portrait's own teeth squeeze rows of lips and teeth into a pixel
    or two, or skip them (a fold: the lip moved over the teeth). Sampled at points
    (bilinear, no prefilter), each column lands on a different row of that content: the
    seam breaks into one-pixel steps and flecks, and a fold's edge is one pixel's step,
    far sharper than any edge of the photo. Where a frame's rows take more than ~1.2 of
    the source's, the patch is blended toward its blur (fully from a squeeze of 2.7):
    1-2-3-2-1 along the rows, then 1-4-6-4-1 across them. ``moving``: (frame, top, left)
    of each patch of ``size`` (rows, columns); ``step``: the grid's spacing per row of
    R. All patches at once: a batch's frames share the tier's patch size.
    """
    ph, pw = size[0], size[1]
    g = torch.stack([grids[m[0]][1, m[1] : m[1] + ph + 1, m[2] : m[2] + pw] for m in moving])
    # Source rows per row of the frame (a fold counts as a squeeze).
    weight = (((g[:, 1:] - g[:, :-1]).abs() / step - 1.2) / 1.5).clamp(0, 1)
    rows = torch.nonzero((weight > 0).any(2).any(0)).flatten()
    if rows.numel() == 0:
        return
    # Only the rows that are squeezed (a few around the lips' seam).
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    weight = weight[:, None, r0:r1]
    slabs = torch.stack([views[m[0]][:, m[1] + r0 : m[1] + r1, m[2] : m[2] + pw]
                         for m in moving])
    # (Slices: avg_pool2d is ~20x slower here. The slabs' two end rows and columns are
    # left as they are.)
    along = slabs[..., 2:-2] * 3 + (slabs[..., 1:-3] + slabs[..., 3:-1]) * 2
    along = (along + slabs[..., :-4] + slabs[..., 4:]) / 9
    inner = slabs[..., 2:-2]
    inner.add_(weight[..., 2:-2] * (along - inner))
    across = slabs[:, :, 2:-2] * 6 + (slabs[:, :, 1:-3] + slabs[:, :, 3:-1]) * 4
    across = (across + slabs[:, :, :-4] + slabs[:, :, 4:]) / 16
    mid = slabs[:, :, 2:-2]
    mid.add_(weight[:, :, 2:-2] * (across - mid))
    for i in range(len(moving)):
        m = moving[i]
        views[m[0]][:, m[1] + r0 : m[1] + r1, m[2] : m[2] + pw].copy_(slabs[i])


def _spans(rects: List[List[int]]) -> List[Tuple[int, int, int, int, bool]]:  # noqa: UP006
    """The rectangles to warp: (r0, r1, c0, c1, on the outline's band)."""
    out: List[Tuple[int, int, int, int, bool]] = []  # noqa: UP006
    for r in rects:
        r0, r1, c0, c1, k0, k1 = r[0], r[1], r[2], r[3], r[4], r[5]
        if k1 <= k0:
            out.append((r0, r1, c0, c1, True))
            continue
        if k0 > c0:
            out.append((r0, r1, c0, k0, True))
        out.append((r0, r1, k0, k1, False))
        if c1 > k1:
            out.append((r0, r1, k1, c1, True))
    return out


def _blend(views: List[Tensor], at: List[List[int]], keep: Tensor, paint: Tensor) -> None:  # noqa: UP006
    """Each patch i onto frame ``at[i][0]`` with its top-left corner at ``at[i][1:]``."""
    ph, pw = keep.shape[2], keep.shape[3]
    for i, (j, oy, ox) in enumerate(at):
        views[j][:, oy : oy + ph, ox : ox + pw].mul_(keep[i]).add_(paint[i])


def _render(base: Tensor, warps: List[Warp], counts: List[int], coef: Tensor,  # noqa: UP006
            shifts: List[int], eye_moves: List[List[int]], lifts: Tensor,  # noqa: UP006
            bands: List[int], backgrounds: List[Tensor],  # noqa: UP006
            mouths: Tensor, mouth_at: List[List[int]], mouth_uv: List[Tensor],  # noqa: UP006
            region: List[int], spans: List[List[List[int]]],  # noqa: UP006
            moving: List[List[int]], squeeze: List[int], margin: int,  # noqa: UP006
            ) -> Tensor:
    """A batch's frames, [n, H, W, 3] uint8, with the frames of each warp consecutive.

    ``spans``: per warp, the rectangles of R its frames are drawn on (rows r0…r1,
    columns c0…c1; of them, columns k0…k1 are inside the person whatever the motion):
    [r0, r1, c0, c1, k0, k1]. Outside them the background frame is already what the
    kernel would draw (the plate), to the bit.

    ``bands``: the first row of the mouth fields, and the eye band's rows, in R.
    ``region``: R's rows and columns in the frame (y0, y1, x0, x1). ``mouths`` is one row
    of parameters per open mouth, placed by ``mouth_at``. ``eye_moves`` and ``lifts``:
    where the head carries the eyes, per frame (whole pixels; the lids' rows exactly).
    ``moving``: where a frame's mouth fields may squeeze the portrait, (frame, top, left)
    of a patch of ``squeeze`` (rows, columns) in R (:func:`_unsqueeze`); ``margin``: the
    warp source's around R.
    """
    rh, rw = base.shape[1], base.shape[2]
    views: List[Tensor] = []  # noqa: UP006 — each frame's region, [3, rh, rw]
    warped: List[Tensor] = []  # noqa: UP006
    grids: List[Tensor] = []  # noqa: UP006 — each frame's sampling grid, [2, rh, rw]
    start = 0
    for w in range(len(warps)):  # TorchScript has no zip(strict=...)
        source, fields, scales, ints = warps[w]
        n = counts[w]
        planes, shade, spots, cols = _grid(base, fields, scales, ints, coef[start : start + n],
                              shifts[start : start + n], eye_moves[start : start + n],
                              lifts[start : start + n], bands)
        # Only the spans the person can reach are drawn (the rest of R is the plate, as
        # the background frame holds it already). On the outline's band the person mask
        # is warped with the colour and the moved person composited over the plate; where
        # the person covers every pixel the warp can reach, the colour alone is warped.
        # The frames of one avatar share its source: their grids are stacked along the
        # height and warped in one call per span, without copying the source per frame.
        # Written channels last (as the frames are): the paste is then a plain conversion.
        group = torch.empty(n, rh, rw, 3)
        layers = group.permute(3, 0, 1, 2)  # channels first: the passes below write it so
        backdrop = fields[8][:, None]
        for span in _spans(spans[w]):
            r0, r1, c0, c1, edge = span
            grid = planes[:, :, r0:r1, c0:c1].permute(0, 2, 3, 1).contiguous()
            grid = grid.view(1, n * (r1 - r0), c1 - c0, 2)
            dest = layers[:, :, r0:r1, c0:c1]
            if edge:
                sampled = F.grid_sample(source[None], grid, mode="bilinear",
                                        padding_mode="border", align_corners=False)
                got = sampled.view(4, n, r1 - r0, c1 - c0)
                # The moved person (premultiplied by its mask) over the still background:
                # where the head leaves, the plate. One pass.
                torch.addcmul(got[:3], backdrop[:, :, r0:r1, c0:c1], got[3:4].neg_().add_(1),
                              out=dest)
            else:
                sampled = F.grid_sample(source[None, :3], grid, mode="bilinear",
                                        padding_mode="border", align_corners=False)
                dest.copy_(sampled.view(3, n, r1 - r0, c1 - c0))
        for i in range(len(spots)):
            lid = group[spots[i], bands[1] : bands[2], cols[0] : cols[1]]  # [re, cols, 3]
            lid.mul_(shade[i, 0][:, :, None])
            smear = shade[i, 1][:, :, None]
            if bool((smear > 0).any()):
                k = max(3, (cols[1] - cols[0]) // 40 * 2 + 1)  # ~a twentieth of the eyes
                along = F.avg_pool2d(lid.permute(2, 0, 1)[None], (1, k), stride=1,
                                     padding=(0, k // 2), count_include_pad=False)
                lid.add_(smear * (along[0].permute(1, 2, 0) - lid))
        warped.append(group)
        views.extend(layers.unbind(1))
        grids.extend(planes.unbind(0))
        start += n
    if len(moving) > 0:
        _unsqueeze(views, grids, moving, squeeze, 2.0 / (rh + 2 * margin))
    if mouths.shape[0] > 0:
        keep, paint = _mouth_paint(mouths, mouth_uv[0], mouth_uv[1], mouth_uv[2], mouth_uv[3])
        _blend(views, mouth_at, keep, paint)
    out = torch.stack(backgrounds)
    y0, x0 = region[0], region[2]
    # Every colour is a blend of portrait pixels and shades within 0…255, offset by
    # +0.5: the conversion's truncation rounds, and no clamp is needed.
    start = 0
    for w in range(len(warped)):  # pasted group by group, span by span: no concatenation
        group = warped[w]
        n = group.shape[0]
        for r in spans[w]:
            r0, r1, c0, c1 = r[0], r[1], r[2], r[3]
            out[start : start + n, y0 + r0 : y0 + r1, x0 + c0 : x0 + c1].copy_(
                group[:, r0:r1, c0:c1])
        start += n
    return out


with warnings.catch_warnings():
    # torch.jit is deprecated for torch.compile, but that needs a C++ toolchain on every
    # worker and compiles again for each batch layout (avatars × sizes); this graph is
    # plain TorchScript. The way off it is a render process of its own (README, next).
    warnings.simplefilter("ignore", DeprecationWarning)
    render = torch.jit.script(_render)
