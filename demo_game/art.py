"""All the demo's art, drawn with pygame at start-up: village ground, buildings, trees, villagers, faces.

Nothing is loaded from disk: the village is painted once into a background surface (seeded, so it
looks the same every run), the animated bits (forge glow, smoke, water) and the characters are drawn
every frame from the NPC's ``Pose``, which is how expressions, lip sync, nods and startles show.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pygame

from npc_voice.game.animation import Pose

W, H = 960, 640
GRASS = (92, 156, 74)
PATH = (196, 164, 112)


@dataclass(frozen=True)
class Look:
    """How a character is dressed and coiffed."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    tunic: tuple[int, int, int]
    extra: tuple[int, int, int]  # apron, shawl or armour
    style: str  # "smith" | "herbalist" | "guard" | "hero"


# expression -> (inner brow lift, outer brow lift, eye opening, smile, blush) in head radii
EXPRESSIONS: dict[str, tuple[float, float, float, float, float]] = {
    "neutral": (0.0, 0.0, 1.0, 0.0, 0.0),
    "calm": (0.0, 0.02, 0.75, 0.15, 0.0),
    "happy": (0.06, 0.04, 0.7, 1.0, 0.6),
    "sad": (0.14, -0.06, 0.75, -0.8, 0.0),
    "angry": (-0.16, 0.08, 0.8, -0.6, 0.8),
    "fearful": (0.16, 0.02, 1.35, -0.4, 0.0),
    "surprised": (0.16, 0.16, 1.4, 0.0, 0.2),
}
EMOTION_COLOURS: dict[str, tuple[int, int, int]] = {
    "neutral": (170, 170, 170), "calm": (120, 190, 200), "happy": (250, 200, 70), "sad": (90, 130, 220),
    "angry": (225, 70, 60), "fearful": (160, 110, 210), "surprised": (250, 150, 60),
}


def _mix(a: tuple, b: tuple, k: float) -> tuple[int, int, int]:
    return tuple(int(a[i] + (b[i] - a[i]) * k) for i in range(3))  # type: ignore[return-value]


def _shade(c: tuple, k: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, int(v * k))) for v in c[:3])  # type: ignore[return-value]


def shadow(surface: pygame.Surface, center: tuple[float, float], w: int, h: int, alpha: int = 70) -> None:
    s = pygame.Surface((w, h), pygame.SRCALPHA)
    pygame.draw.ellipse(s, (0, 0, 0, alpha), s.get_rect())
    surface.blit(s, (center[0] - w / 2, center[1] - h / 2))


# ---------------------------------------------------------------- the village


@dataclass
class Village:
    """The painted background and what the player can walk into."""

    background: pygame.Surface
    blockers: list[pygame.Rect]
    forge_mouth: tuple[int, int]
    chimneys: list[tuple[int, int]]
    pond: pygame.Rect


def _ground(rng: random.Random) -> pygame.Surface:
    s = pygame.Surface((W, H))
    s.fill(GRASS)
    for _ in range(5000):
        x, y = rng.randrange(W), rng.randrange(H)
        c = _shade(GRASS, rng.uniform(0.8, 1.18))
        pygame.draw.line(s, c, (x, y), (x + rng.randint(-1, 1), y - rng.randint(2, 5)))
    for _ in range(140):
        x, y = rng.randrange(W), rng.randrange(H)
        c = rng.choice([(250, 240, 120), (240, 240, 250), (230, 120, 160), (170, 150, 240)])
        for dx, dy in ((0, -2), (2, 0), (0, 2), (-2, 0)):
            pygame.draw.circle(s, c, (x + dx, y + dy), 1)
        pygame.draw.circle(s, (250, 210, 80), (x, y), 1)
    return s


def _path(s: pygame.Surface, rng: random.Random, points: list[tuple[int, int]], width: int) -> None:
    for a, b in zip(points, points[1:], strict=False):
        steps = int(math.dist(a, b) / 4) + 1
        for i in range(steps + 1):
            x = a[0] + (b[0] - a[0]) * i / steps
            y = a[1] + (b[1] - a[1]) * i / steps
            pygame.draw.circle(s, _shade(PATH, 0.86), (int(x), int(y)), width // 2 + 3)
    for a, b in zip(points, points[1:], strict=False):
        steps = int(math.dist(a, b) / 4) + 1
        for i in range(steps + 1):
            x = a[0] + (b[0] - a[0]) * i / steps
            y = a[1] + (b[1] - a[1]) * i / steps
            pygame.draw.circle(s, PATH, (int(x), int(y)), width // 2)
            if rng.random() < 0.5:
                px, py = int(x + rng.uniform(-width / 2.5, width / 2.5)), int(y + rng.uniform(-width / 3, width / 3))
                pygame.draw.circle(s, _shade(PATH, rng.uniform(0.7, 0.9)), (px, py), rng.randint(1, 2))


def _tree(s: pygame.Surface, rng: random.Random, x: int, y: int, r: int) -> pygame.Rect:
    shadow(s, (x + 6, y + 4), r * 2 + 10, r, 80)
    pygame.draw.rect(s, (96, 64, 40), (x - 5, y - r // 2, 10, r // 2 + 4), border_radius=3)
    base = rng.choice([(52, 112, 56), (60, 124, 60), (46, 104, 62)])
    lobes = ((0, -r, r), (-r // 2, -r // 2 - 4, r * 3 // 4), (r // 2, -r // 2 - 2, r * 3 // 4))
    for k, (dx, dy, rr) in enumerate(lobes):
        pygame.draw.circle(s, _shade(base, 0.8 + 0.1 * k), (x + dx, y + dy), rr)
    pygame.draw.circle(s, _shade(base, 1.25), (x - r // 3, y - r - r // 3), r // 2)
    for _ in range(12):
        a, d = rng.uniform(0, 6.28), rng.uniform(0, r)
        pygame.draw.circle(s, _shade(base, 1.35), (int(x + math.cos(a) * d), int(y - r + math.sin(a) * d * 0.8)), 2)
    return pygame.Rect(x - 10, y - 8, 20, 14)


def _forge(s: pygame.Surface, rng: random.Random) -> tuple[list[pygame.Rect], tuple[int, int], tuple[int, int]]:
    x, y, w, h = 50, 60, 250, 150
    shadow(s, (x + w / 2 + 10, y + h + 6), w + 30, 30, 90)
    wall = pygame.Rect(x, y + 60, w, h - 60)
    pygame.draw.rect(s, (128, 124, 120), wall)
    for row in range(6):  # stone courses
        for col in range(12):
            off = 10 if row % 2 else 0
            r = pygame.Rect(x + col * 22 - off, y + 62 + row * 15, 21, 14).clip(wall)
            if r.w > 2:
                pygame.draw.rect(s, _shade((140, 136, 130), rng.uniform(0.85, 1.1)), r, border_radius=3)
    roof = [(x - 14, y + 66), (x + w / 2, y - 10), (x + w + 14, y + 66)]
    pygame.draw.polygon(s, (70, 52, 46), roof)
    for i in range(1, 8):
        k = i / 8
        pygame.draw.line(s, (58, 42, 38), (x - 14 + (w / 2 + 14) * k, y + 66 - 76 * k),
                         (x + w + 14 - (w / 2 + 14) * k, y + 66 - 76 * k), 2)
    chimney = pygame.Rect(x + 180, y - 4, 26, 48)
    pygame.draw.rect(s, (100, 96, 92), chimney)
    pygame.draw.rect(s, (80, 76, 72), (chimney.x - 3, chimney.y, chimney.w + 6, 8))
    door = pygame.Rect(x + 30, y + 110, 40, 50)
    pygame.draw.rect(s, (72, 48, 30), door, border_top_left_radius=18, border_top_right_radius=18)
    pygame.draw.circle(s, (210, 180, 80), (door.right - 8, door.centery + 6), 3)
    mouth = pygame.Rect(x + 110, y + 100, 70, 50)  # the open forge
    pygame.draw.rect(s, (40, 30, 28), mouth, border_top_left_radius=30, border_top_right_radius=30)
    sign_x = x + w - 30
    pygame.draw.line(s, (80, 60, 40), (sign_x, y + 80), (sign_x + 36, y + 80), 4)
    pygame.draw.rect(s, (150, 110, 60), (sign_x + 8, y + 84, 30, 22), border_radius=3)
    pygame.draw.polygon(s, (60, 60, 66), [(sign_x + 12, y + 92), (sign_x + 34, y + 92), (sign_x + 28, y + 100),
                                          (sign_x + 18, y + 100)])
    # anvil and water barrel in the yard
    ax, ay = 270, 262
    shadow(s, (ax, ay + 12), 50, 14)
    pygame.draw.rect(s, (60, 40, 30), (ax - 10, ay - 6, 20, 18))
    pygame.draw.polygon(s, (70, 72, 80), [(ax - 24, ay - 16), (ax + 20, ay - 16), (ax + 28, ay - 10),
                                           (ax + 14, ay - 6), (ax - 16, ay - 6)])
    pygame.draw.line(s, (140, 144, 156), (ax - 22, ay - 16), (ax + 20, ay - 16), 2)
    bx, by = 320, 240
    shadow(s, (bx, by + 14), 34, 10)
    pygame.draw.rect(s, (110, 74, 44), (bx - 14, by - 14, 28, 28), border_radius=6)
    pygame.draw.ellipse(s, (70, 110, 150), (bx - 12, by - 18, 24, 10))
    for yy in (by - 6, by + 6):
        pygame.draw.line(s, (70, 70, 74), (bx - 14, yy), (bx + 13, yy), 2)
    blockers = [pygame.Rect(x, y + 40, w, h - 40), pygame.Rect(ax - 26, ay - 18, 56, 28),
                pygame.Rect(bx - 14, by - 14, 28, 28)]
    return blockers, mouth.center, chimney.midtop


def _hut(s: pygame.Surface, rng: random.Random) -> tuple[list[pygame.Rect], tuple[int, int]]:
    x, y, w, h = 650, 50, 230, 150
    shadow(s, (x + w / 2 + 10, y + h + 6), w + 30, 30, 90)
    pygame.draw.rect(s, (150, 104, 64), (x, y + 60, w, h - 60))
    for i in range(0, w, 14):
        pygame.draw.line(s, (128, 86, 52), (x + i, y + 60), (x + i, y + h), 2)
    roof = [(x - 18, y + 72), (x + 20, y - 4), (x + w - 20, y - 4), (x + w + 18, y + 72)]
    pygame.draw.polygon(s, (196, 164, 84), roof)
    for i in range(40):
        t = i / 40
        px = x - 18 + (w + 36) * t
        pygame.draw.line(s, _shade((196, 164, 84), rng.uniform(0.75, 0.95)), (px, y + 72),
                         (px + rng.uniform(-6, 6), y + 72 - rng.uniform(30, 70)), 2)
    pygame.draw.line(s, (150, 120, 60), (x - 18, y + 72), (x + w + 18, y + 72), 4)
    chimney = (x + 50, y - 8)
    pygame.draw.rect(s, (120, 110, 100), (chimney[0] - 10, chimney[1], 20, 30))
    door = pygame.Rect(x + 95, y + 105, 40, 45)
    pygame.draw.rect(s, (90, 58, 36), door, border_top_left_radius=16, border_top_right_radius=16)
    for wx in (x + 30, x + 165):
        win = pygame.Rect(wx, y + 95, 36, 30)
        pygame.draw.rect(s, (250, 214, 120), win)
        pygame.draw.rect(s, (96, 62, 40), win, 3)
        pygame.draw.line(s, (96, 62, 40), win.midtop, win.midbottom, 2)
        for k in range(4):  # drying herbs under the eaves
            hx = wx + 4 + k * 9
            pygame.draw.line(s, (90, 70, 40), (hx, y + 74), (hx, y + 84))
            pygame.draw.circle(s, rng.choice([(90, 150, 70), (150, 120, 170), (110, 160, 90)]), (hx, y + 87), 4)
    # the herb garden
    gx, gy = 670, 225
    for row in range(3):
        bed = pygame.Rect(gx, gy + row * 26, 190, 18)
        pygame.draw.rect(s, (110, 76, 50), bed, border_radius=6)
        for k in range(14):
            px = bed.x + 8 + k * 13
            c = rng.choice([(70, 140, 60), (90, 160, 70), (60, 120, 80)])
            pygame.draw.circle(s, c, (px, bed.y + 6), 5)
            if rng.random() < 0.4:
                pygame.draw.circle(s, rng.choice([(230, 120, 200), (250, 230, 110), (170, 140, 250)]),
                                   (px + 1, bed.y + 3), 2)
    for fx in range(gx - 10, gx + 205, 16):  # little fence
        pygame.draw.rect(s, (170, 130, 90), (fx, gy - 14, 4, 14))
    pygame.draw.line(s, (170, 130, 90), (gx - 10, gy - 10), (gx + 198, gy - 10), 2)
    return [pygame.Rect(x, y + 40, w, h - 40), pygame.Rect(gx - 10, gy - 14, 210, 84)], chimney


def _palisade(s: pygame.Surface, gate_x: int) -> list[pygame.Rect]:
    y = 588
    blockers = []
    for x in range(0, W, 14):
        if abs(x + 7 - gate_x) < 46:
            continue
        pygame.draw.rect(s, (118, 82, 50), (x, y - 26, 12, 40))
        pygame.draw.polygon(s, (134, 96, 60), [(x, y - 26), (x + 6, y - 34), (x + 12, y - 26)])
        pygame.draw.line(s, (96, 64, 38), (x + 3, y - 22), (x + 3, y + 12))
    for side in (-1, 1):  # gate posts with torches
        px = gate_x + side * 52
        pygame.draw.rect(s, (90, 60, 36), (px - 8, y - 50, 16, 66))
        pygame.draw.rect(s, (70, 50, 30), (px - 10, y - 54, 20, 8))
    pygame.draw.rect(s, (100, 70, 42), (gate_x - 60, y - 62, 120, 10))
    blockers += [pygame.Rect(0, y - 20, gate_x - 46, 40), pygame.Rect(gate_x + 46, y - 20, W, 40)]
    return blockers


def _well(s: pygame.Surface, x: int, y: int) -> pygame.Rect:
    shadow(s, (x + 4, y + 18), 80, 24, 80)
    pygame.draw.ellipse(s, (120, 118, 114), (x - 30, y - 10, 60, 34))
    pygame.draw.ellipse(s, (40, 60, 80), (x - 22, y - 6, 44, 22))
    pygame.draw.rect(s, (100, 70, 44), (x - 30, y - 48, 6, 46))
    pygame.draw.rect(s, (100, 70, 44), (x + 24, y - 48, 6, 46))
    pygame.draw.polygon(s, (150, 70, 50), [(x - 40, y - 44), (x, y - 66), (x + 40, y - 44)])
    pygame.draw.line(s, (80, 60, 40), (x - 24, y - 34), (x + 24, y - 34), 3)
    return pygame.Rect(x - 30, y - 10, 60, 30)


def paint_village(seed: int = 7) -> Village:
    """The whole village background, once; the same every run."""
    rng = random.Random(seed)
    s = _ground(rng)
    gate_x = 480
    _path(s, rng, [(gate_x, 660), (gate_x, 420), (470, 340)], 46)
    _path(s, rng, [(470, 350), (330, 300), (200, 260), (100, 225)], 38)
    _path(s, rng, [(480, 350), (620, 290), (760, 215)], 38)
    pond = pygame.Rect(60, 400, 200, 110)
    pygame.draw.ellipse(s, (70, 110, 70), pond.inflate(16, 12))
    pygame.draw.ellipse(s, (60, 120, 170), pond)
    pygame.draw.ellipse(s, (90, 150, 200), pond.inflate(-40, -36))
    for lx, ly in ((100, 430), (200, 470), (150, 490)):
        pygame.draw.circle(s, (70, 150, 70), (lx, ly), 8)
        pygame.draw.polygon(s, (60, 120, 170), [(lx, ly), (lx + 8, ly - 3), (lx + 8, ly + 3)])
    blockers = [pond.inflate(-10, -10)]
    forge_block, forge_mouth, forge_chimney = _forge(s, rng)
    hut_block, hut_chimney = _hut(s, rng)
    blockers += forge_block + hut_block + _palisade(s, gate_x) + [_well(s, 480, 300)]
    trees = [(30, 330, 26), (330, 60, 24), (390, 110, 28), (590, 70, 22), (915, 270, 30), (860, 330, 24),
             (920, 420, 28), (700, 470, 26), (800, 520, 22), (300, 470, 22), (40, 560, 24), (610, 520, 20),
             (915, 540, 26), (560, 180, 18)]
    for x, y, r in sorted(trees, key=lambda t: t[1]):
        blockers.append(_tree(s, rng, x, y, r))
    for x, y in ((400, 400), (560, 400)):  # lanterns along the main path
        pygame.draw.rect(s, (60, 50, 40), (x - 2, y - 34, 4, 36))
        pygame.draw.rect(s, (250, 210, 120), (x - 6, y - 44, 12, 12), border_radius=3)
        pygame.draw.rect(s, (60, 50, 40), (x - 6, y - 44, 12, 12), 2, border_radius=3)
    return Village(s, blockers, forge_mouth, [forge_chimney, hut_chimney], pond)


def draw_ambient(surface: pygame.Surface, village: Village, t: float) -> None:
    """The living parts: forge glow, chimney smoke, ripples on the pond."""
    mx, my = village.forge_mouth
    flicker = 0.75 + 0.25 * math.sin(t * 9.0) * math.sin(t * 3.7 + 1)
    glow = pygame.Surface((160, 120), pygame.SRCALPHA)
    for r, a in ((58, 40), (42, 70), (26, 120)):
        pygame.draw.ellipse(glow, (255, 140, 40, int(a * flicker)), (80 - r, 60 - r * 0.7, 2 * r, 1.4 * r))
    surface.blit(glow, (mx - 80, my - 50))
    pygame.draw.ellipse(surface, _mix((255, 120, 30), (255, 220, 120), flicker), (mx - 22, my + 4, 44, 16))
    for cx, cy in village.chimneys:
        for i in range(6):
            phase = (t * 0.35 + i / 6) % 1.0
            r = int(6 + phase * 16)
            puff = pygame.Surface((2 * r, 2 * r), pygame.SRCALPHA)
            pygame.draw.circle(puff, (220, 220, 225, int(130 * (1 - phase))), (r, r), r)
            surface.blit(puff, (cx - r + math.sin(t + i) * 6 + phase * 30, cy - r - phase * 80))
    p = village.pond
    for i in range(3):
        phase = (t * 0.4 + i / 3) % 1.0
        rr = pygame.Rect(0, 0, int(20 + 70 * phase), int(8 + 28 * phase))
        rr.center = (p.centerx + (i - 1) * 40, p.centery + (i % 2) * 10)
        ring = pygame.Surface(rr.size, pygame.SRCALPHA)
        pygame.draw.ellipse(ring, (200, 230, 250, int(120 * (1 - phase))), ring.get_rect(), 1)
        surface.blit(ring, rr)


# ---------------------------------------------------------------- characters


def _expression(pose: Pose) -> tuple[float, float, float, float, float]:
    base = EXPRESSIONS["neutral"]
    target = EXPRESSIONS.get(pose.expression, base)
    k = min(1.0, pose.expression_weight * 2.0)
    out = [b + (e - b) * k for b, e in zip(base, target, strict=True)]
    if pose.startle > 0:  # eyes wide, brows up, whatever the mood
        out[0] += 0.12 * pose.startle
        out[1] += 0.1 * pose.startle
        out[2] = max(out[2], 1.0 + 0.5 * pose.startle)
    return tuple(out)  # type: ignore[return-value]


def draw_face(surface: pygame.Surface, cx: float, cy: float, r: float, look: Look, pose: Pose, t: float) -> None:
    """A face of radius ``r``: expression from the pose's emotion, mouth from its viseme."""
    brow_in, brow_out, eye_open, smile, blush = _expression(pose)
    w = max(1, int(r / 9))
    if look.style == "herbalist":
        pygame.draw.circle(surface, look.hair, (cx, cy - r * 0.95), r * 0.5)  # the bun
    pygame.draw.circle(surface, _shade(look.skin, 0.9), (cx - r * 0.95, cy + r * 0.05), r * 0.2)
    pygame.draw.circle(surface, _shade(look.skin, 0.9), (cx + r * 0.95, cy + r * 0.05), r * 0.2)
    pygame.draw.circle(surface, look.skin, (cx, cy), r)
    if look.style == "smith":
        pygame.draw.ellipse(surface, look.hair, (cx - r, cy - r * 1.05, 2 * r, r * 0.9))
        beard = [(cx - r * 0.95, cy + r * 0.05), (cx - r * 0.6, cy + r * 1.05), (cx, cy + r * 1.35),
                 (cx + r * 0.6, cy + r * 1.05), (cx + r * 0.95, cy + r * 0.05), (cx + r * 0.5, cy + r * 0.35),
                 (cx - r * 0.5, cy + r * 0.35)]
        pygame.draw.polygon(surface, _shade(look.hair, 1.2), beard)
    elif look.style == "herbalist":
        pygame.draw.ellipse(surface, look.hair, (cx - r * 1.02, cy - r * 1.05, 2.04 * r, r * 1.0))
        pygame.draw.arc(surface, look.extra, (cx - r * 1.05, cy - r * 1.1, 2.1 * r, 1.6 * r), 0.3, 2.84, max(2, w * 2))
    elif look.style == "guard":
        pygame.draw.ellipse(surface, (150, 156, 166), (cx - r * 1.08, cy - r * 1.15, 2.16 * r, r * 1.2))
        pygame.draw.rect(surface, (120, 126, 136), (cx - r * 1.1, cy - r * 0.3, 2.2 * r, r * 0.22))
        pygame.draw.rect(surface, (120, 126, 136), (cx - r * 0.08, cy - r * 0.3, r * 0.16, r * 0.55))
    else:  # the hero
        pygame.draw.ellipse(surface, look.hair, (cx - r * 1.02, cy - r * 1.1, 2.04 * r, r * 1.05))
        pygame.draw.circle(surface, look.hair, (cx + r * 0.7, cy - r * 0.5), r * 0.35)
    if blush > 0.05:
        cheek = pygame.Surface((int(r * 0.6) + 2, int(r * 0.35) + 2), pygame.SRCALPHA)
        pygame.draw.ellipse(cheek, (230, 90, 90, int(110 * min(1.0, blush))), cheek.get_rect())
        for side in (-1, 1):
            surface.blit(cheek, (cx + side * r * 0.55 - r * 0.3, cy + r * 0.22))
    blink = (t % 4.3) < 0.12
    for side in (-1, 1):
        ex, ey = cx + side * r * 0.38, cy - r * 0.08
        ew, eh = r * 0.3, r * 0.26 * eye_open * (0.1 if blink else 1.0)
        pygame.draw.ellipse(surface, (250, 250, 250), (ex - ew / 2, ey - eh / 2, ew, max(1, eh)))
        if not blink:
            pr = max(1.0, r * 0.085 * (0.8 if eye_open > 1.2 else 1.0))
            pygame.draw.circle(surface, (40, 30, 30), (ex + side * r * 0.02, ey + r * 0.02), pr)
        by_in = ey - r * 0.28 - brow_in * r
        by_out = ey - r * 0.26 - brow_out * r
        brow = _shade(look.hair, 0.7)
        pygame.draw.line(surface, brow, (ex - side * ew * 0.55, by_in), (ex + side * ew * 0.7, by_out), max(1, w + 1))
    mx, my = cx, cy + r * 0.5
    mw = r * 0.42 * pose.mouth_width
    mh = r * (0.04 + 0.32 * pose.mouth_open)
    if pose.mouth_open > 0.08:
        rect = pygame.Rect(0, 0, int(mw), max(2, int(mh)))
        rect.center = (int(mx), int(my + mh * 0.2))
        pygame.draw.ellipse(surface, (90, 28, 32), rect)
        if rect.h > 6:
            pygame.draw.rect(surface, (245, 245, 240), (rect.x + rect.w * 0.2, rect.y, rect.w * 0.6, rect.h * 0.22))
            pygame.draw.ellipse(surface, (200, 90, 100), (rect.x + rect.w * 0.25, rect.bottom - rect.h * 0.4,
                                                          rect.w * 0.5, rect.h * 0.35))
    else:
        curve = smile * r * 0.14
        pts = [(mx - mw / 2, my - curve), (mx - mw / 4, my + curve * 0.3), (mx + mw / 4, my + curve * 0.3),
               (mx + mw / 2, my - curve)]
        pygame.draw.lines(surface, (110, 40, 40), False, pts, max(1, w + 1))
    if look.style == "guard":
        pygame.draw.arc(surface, look.hair, (mx - r * 0.35, my - r * 0.28, r * 0.7, r * 0.3), 0.2, 2.94, max(2, w * 2))


@dataclass(frozen=True)
class _Motion:
    """How the body pose moves a villager this frame, in px."""

    bob: float
    lean: float = 0.0
    head_dy: float = 0.0
    arm_l: float = 0.0  # raise
    arm_r: float = 0.0


def _motion(pose: Pose, t: float, side: int) -> _Motion:
    """The body's motion for the pose (talk, listen, nod, startle); ``side`` is 1 facing right, -1 left."""
    bob = math.sin(t * 2.2) * 1.0
    if pose.body == "talking":
        return _Motion(bob + math.sin(t * 7) * 0.6, arm_r=6 + 5 * math.sin(t * 5.5))
    if pose.body == "listening":  # leaning further in and head up as the player's turn nears its end
        return _Motion(bob, lean=(3 + 3 * pose.anticipation) * side, head_dy=1.5 * (1 - pose.anticipation))
    if pose.body == "nodding":
        return _Motion(bob, head_dy=4 * abs(math.sin(pose.nod * math.pi * 2)))
    if pose.body == "startled":
        return _Motion(bob - 3 * pose.startle, lean=-4 * pose.startle * side, arm_l=12 * pose.startle,
                       arm_r=12 * pose.startle)
    return _Motion(bob)


def draw_character(
    surface: pygame.Surface, x: float, y: float, look: Look, pose: Pose, t: float, facing: float = 0.0,
    walking: bool = False,
) -> None:
    """A villager standing with feet at (x, y); the pose bends the body (talk, listen, nod, startle)."""
    side = 1 if facing >= 0 else -1
    m = _motion(pose, t, side)
    shadow(surface, (x, y), 34, 11, 90)
    _draw_legs(surface, x, y, t, walking)
    body = pygame.Rect(0, 0, 24, 24)
    body.midbottom = (int(x + m.lean * 0.5), int(y - 9 + m.bob))
    pygame.draw.rect(surface, look.tunic, body, border_radius=8)
    _draw_clothes(surface, body, look)
    _draw_arms(surface, body, look, m.arm_l, m.arm_r)
    if pose.body == "listening":  # a hand cupped to the ear
        pygame.draw.circle(surface, look.skin, (body.centerx + 12 * side, body.top - 10), 3)
    draw_face(surface, x + m.lean, body.top - 11 + m.head_dy, 13, look, pose, t)
    if pose.startle > 0.3:
        f = pygame.font.Font(None, 30)
        surface.blit(f.render("!", True, (250, 230, 90)), (x + 14, body.top - 44))


def _draw_legs(surface: pygame.Surface, x: float, y: float, t: float, walking: bool) -> None:
    step = math.sin(t * 12) * 4 if walking else 0
    for side, dy in ((-1, step), (1, -step)):
        pygame.draw.rect(surface, (60, 46, 40), (x + side * 5 - 3, y - 12 + min(0, dy), 7, 12 - abs(dy) * 0.3),
                         border_radius=2)


def _draw_clothes(surface: pygame.Surface, body: pygame.Rect, look: Look) -> None:
    """What each style wears with the tunic: the smith's apron, herbalist's shawl, guard's armour, hero's cloak."""
    if look.style == "smith":
        pygame.draw.rect(surface, look.extra, body.inflate(-8, -4).move(0, 3), border_radius=4)
    elif look.style == "herbalist":
        pygame.draw.polygon(surface, look.extra, [body.topleft, body.topright, (body.centerx, body.bottom - 4)])
    elif look.style == "guard":
        pygame.draw.rect(surface, look.extra, body.inflate(-4, -6).move(0, -2), border_radius=5)
        pygame.draw.line(surface, (220, 190, 90), (body.left + 4, body.top + 6), (body.right - 4, body.bottom - 4), 2)
    else:
        pygame.draw.polygon(surface, look.extra, [body.topleft, body.topright, (body.right + 3, body.bottom + 2),
                                                  (body.left - 3, body.bottom + 2)])
        pygame.draw.rect(surface, look.tunic, body.inflate(-6, 0), border_radius=8)


def _draw_arms(surface: pygame.Surface, body: pygame.Rect, look: Look, arm_l: float, arm_r: float) -> None:
    """Both arms, each raised by its lift in px; a raised hand shows at the top of its sleeve."""
    for side, lift in ((-1, arm_l), (1, arm_r)):
        ax = body.centerx + side * 14
        arm = pygame.Rect(0, 0, 7, 16)
        arm.midtop = (ax, body.top + 3 - lift)
        pygame.draw.rect(surface, _shade(look.tunic, 0.85), arm, border_radius=3)
        pygame.draw.circle(surface, look.skin, (ax, arm.top if lift > 4 else arm.bottom), 3)


def draw_portrait(
    surface: pygame.Surface, rect: pygame.Rect, look: Look, pose: Pose, t: float, bg: tuple[int, int, int]
) -> None:
    """A large face for the HUD: the expression and lip sync are easy to read at this size."""
    pygame.draw.rect(surface, bg, rect, border_radius=14)
    clip = surface.get_clip()
    surface.set_clip(rect)
    r = rect.w * 0.3
    body = pygame.Rect(0, 0, rect.w * 0.8, rect.h * 0.5)
    body.midtop = (rect.centerx, rect.centery + r * 0.9)
    pygame.draw.ellipse(surface, look.tunic, body)
    nod = 6 * abs(math.sin(pose.nod * math.pi * 2)) if pose.nod else 0
    draw_face(surface, rect.centerx, rect.centery - r * 0.1 + nod - 8 * pose.startle, r, look, pose, t)
    surface.set_clip(clip)
    pygame.draw.rect(surface, (40, 30, 24), rect, 3, border_radius=14)
