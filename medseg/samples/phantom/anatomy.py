"""Random abdominal anatomy for the synthetic CT: sizes, positions and intensities of each structure.

All positions are millimetres in a patient RAS frame whose origin is on the body's long axis: ``+x``
is the patient's right (the liver's side), ``+y`` anterior, ``+z`` superior. Intensities are
Hounsfield units drawn from the ranges in ``shared/FACTS.md`` for a portal-venous or arterial phase.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from medseg.samples.phantom.shapes import Capsule, Ellipsoid, SmoothField, rotation

# Liver volume range (litres) from the typical adult figures, and the probability of each tumour count.
LIVER_LITRES = (1.2, 1.8)
TUMOUR_COUNT_PROBABILITIES = (0.15, 0.3, 0.25, 0.15, 0.15)  # 0, 1, 2, 3 or 4 tumours


@dataclass(frozen=True)
class Intensities:
    """Mean HU of each tissue for one scan (one contrast phase)."""

    phase: str
    fat: float
    muscle: float
    liver: float
    liver_vessels: float
    spleen: float
    kidney_cortex: float
    kidney_medulla: float
    aorta: float
    ivc: float
    heart: float
    bile: float
    bowel_fluid: float
    lung: float
    cancellous_bone: float
    cortical_bone: float
    disc: float
    csf: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> Intensities:
        """Draw one scan's intensities; 75% of scans are portal-venous, the rest arterial."""
        u = rng.uniform
        if rng.random() < 0.75:
            phase, liver, spleen = "portal", u(100, 130), u(105, 130)
            cortex, aorta, ivc, heart = u(150, 200), u(140, 190), u(110, 150), u(120, 170)
            medulla, vessels = cortex - u(10, 40), liver + u(25, 50)
        else:
            phase, liver, spleen = "arterial", u(70, 90), u(90, 140)
            cortex, aorta, ivc, heart = u(180, 260), u(250, 350), u(60, 100), u(200, 300)
            medulla, vessels = u(90, 120), liver + u(5, 25)
        return cls(
            phase=phase,
            fat=u(-120, -80),
            muscle=u(45, 65),
            liver=liver,
            liver_vessels=vessels,
            spleen=spleen,
            kidney_cortex=cortex,
            kidney_medulla=medulla,
            aorta=aorta,
            ivc=ivc,
            heart=heart,
            bile=u(0, 20),
            bowel_fluid=u(10, 35),
            lung=u(-880, -780),
            cancellous_bone=u(180, 300),
            cortical_bone=u(700, 1100),
            disc=u(70, 100),
            csf=u(0, 15),
        )


@dataclass(frozen=True)
class Body:
    """The body outline and wall: a super-ellipse with lumps, slowly changing size along z.

    Args:
        semi_lr: half-width left-right in mm.
        semi_anterior: half-depth in front of the long axis, mm.
        semi_posterior: half-depth behind it, mm.
        exponent: super-ellipse exponent (2 is an ellipse, larger is boxier).
        harmonics: ``(K, 3)`` rows of (order, relative amplitude, phase) that make the outline lumpy.
        fat_mm: subcutaneous fat thickness.
        muscle_mm: abdominal wall muscle thickness.
        taper: ``(amplitude, wavelength_mm, phase)`` of the body's size change along z.
    """

    semi_lr: float
    semi_anterior: float
    semi_posterior: float
    exponent: float
    harmonics: np.ndarray
    fat_mm: float
    muscle_mm: float
    taper: tuple[float, float, float]

    @property
    def mean_radius(self) -> float:
        """Mean of the three semi-axes, used to turn depths in mm into outline fractions."""
        return (self.semi_lr + self.semi_anterior + self.semi_posterior) / 3

    def radius_field(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Normalised distance from the axis, ``(X, Y)`` float32: 1 on the outline at scale 1.

        It is 1-homogeneous, so the outline at scale ``s`` is the level set ``s``.
        """
        semi_y = np.where(y > 0, self.semi_anterior, self.semi_posterior).astype(np.float32)
        p = self.exponent
        rho = (np.abs(x / self.semi_lr) ** p + np.abs(y / semi_y) ** p) ** (1 / p)
        theta = np.arctan2(y, x)
        lumps = np.ones_like(rho)
        for order, amplitude, phase in self.harmonics:
            lumps += amplitude * np.cos(order * theta + phase)
        return (rho / lumps).astype(np.float32)

    def scale(self, z: np.ndarray) -> np.ndarray:
        """The outline's scale at each height ``z`` (mm), shape of ``z``."""
        amplitude, wavelength, phase = self.taper
        return (1 + amplitude * np.sin(2 * np.pi * z / wavelength + phase)).astype(np.float32)

    @classmethod
    def random(cls, rng: np.random.Generator) -> Body:
        """Draw a body from slim to large; larger bodies carry more fat."""
        semi_lr = rng.uniform(135, 185)
        semi_anterior = rng.uniform(95, 135)
        orders = np.arange(2, 5)
        harmonics = np.stack([orders, rng.uniform(0, 0.04, 3), rng.uniform(0, 2 * np.pi, 3)], axis=1)
        fat = np.clip(8 + (semi_lr - 135) * 0.5 + rng.uniform(-5, 10), 6, 45)
        return cls(
            semi_lr=semi_lr,
            semi_anterior=semi_anterior,
            semi_posterior=semi_anterior * rng.uniform(0.85, 1.0),
            exponent=rng.uniform(2.0, 2.5),
            harmonics=harmonics,
            fat_mm=float(fat),
            muscle_mm=rng.uniform(6, 14),
            taper=(rng.uniform(0, 0.05), rng.uniform(300, 600), rng.uniform(0, 2 * np.pi)),
        )


@dataclass(frozen=True)
class Diaphragm:
    """Two domes: the lungs lie above ``height(x, y)``, the abdomen below.

    Args:
        right_top: height of the right dome's top, mm.
        left_top: height of the left dome's top, mm.
    """

    right_top: float
    left_top: float

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Dome height in mm at each ``(x, y)``; lowest in the lateral and posterior recesses."""
        top = np.where(x > 0, self.right_top, self.left_top)
        fall = 30 * ((np.abs(x) - 60) / 70) ** 2 + 40 * ((y - 15) / 90) ** 2
        return (top - fall).astype(np.float32)


@dataclass(frozen=True)
class Spine:
    """A lumbar/thoracic vertebra column, constant along z but for the discs.

    Args:
        x: left-right position of the vertebral body's centre, mm.
        y: antero-posterior position of the vertebral body's centre, mm.
        radius: vertebral body radius, mm.
        disc_period: distance between discs, mm.
        disc_phase: height of one disc, mm.
    """

    x: float
    y: float
    radius: float
    disc_period: float
    disc_phase: float

    DISC_MM = 8.0
    CORTEX_MM = 1.5

    def is_disc(self, z: np.ndarray) -> np.ndarray:
        """True at the heights occupied by an intervertebral disc."""
        return np.mod(z - self.disc_phase, self.disc_period) < self.DISC_MM


@dataclass(frozen=True)
class Tumour:
    """A liver tumour: layers painted from the outside in, each an ellipsoid with its own HU.

    Args:
        layers: ``(shape, hu)`` pairs; the first is the whole lesion (what the label covers), later
            ones are a core or necrosis inside it.
        kind: ``"hypo"`` or ``"hyper"``, the lesion's contrast relative to the liver.
        rim_enhancing: a hypodense lesion whose outer shell is 0-30 HU brighter than the liver,
            around a hypodense core; the label covers the shell.
    """

    layers: tuple[tuple[Ellipsoid, float], ...]
    kind: str
    rim_enhancing: bool = False

    @property
    def diameter_mm(self) -> float:
        """Mean diameter of the whole lesion in mm."""
        return float(2 * np.mean(self.layers[0][0].semi_axes))


@dataclass(frozen=True)
class Anatomy:
    """Everything needed to render one synthetic abdominal CT."""

    hu: Intensities
    noise_sd: float
    body: Body
    diaphragm: Diaphragm
    spine: Spine
    rib_period: float
    rib_phase: float
    liver: tuple[Ellipsoid, ...]
    liver_vessels: tuple[Capsule, ...]
    liver_texture: SmoothField
    tumours: tuple[Tumour, ...]
    gallbladder: Ellipsoid | None
    spleen: Ellipsoid
    kidneys: tuple[Ellipsoid, Ellipsoid]
    stomach: Ellipsoid
    stomach_air_level: float
    bowel: tuple[tuple[Ellipsoid, bool], ...]
    heart: Ellipsoid
    aorta: tuple[float, float, float]
    ivc: tuple[float, float, float]
    psoas: tuple[Capsule, Capsule]


def _psoas(spine: Spine, top: float) -> tuple[Capsule, Capsule]:
    """The psoas muscles start beside the spine at the level of the lower kidneys and run down."""
    return tuple(  # type: ignore[return-value]
        Capsule(np.array([side * 38, spine.y + 5, top]), np.array([side * 48, spine.y + 20, top - 250]), 15.0)
        for side in (-1, 1)
    )


def _organ(
    rng: np.random.Generator,
    centre: tuple[float, float, float],
    semi_axes: tuple[float, float, float],
    *,
    turn: float = 10.0,
    wobble: float = 0.06,
) -> Ellipsoid:
    return Ellipsoid(
        np.asarray(centre, float),
        np.asarray(semi_axes, float),
        rotation(rng, turn),
        SmoothField.random(rng),
        wobble,
    )


@dataclass(frozen=True)
class LiverSpace:
    """Where liver tissue can be; used to size the liver and to place tumours.

    That is inside the lobes, below the diaphragm, in the body cavity, and clear of the organs and
    vessels painted over the liver.
    """

    lobes: tuple[Ellipsoid, ...]
    body: Body
    diaphragm: Diaphragm
    spine: Spine
    neighbours: tuple[Ellipsoid, ...]
    tubes: tuple[tuple[float, float, float], ...]

    def contains(self, points: np.ndarray, margin: float = 0.0, shrink: float = 1.0) -> np.ndarray:
        """``(N,)`` bool: which ``(N, 3)`` points lie at least ``margin`` mm inside the space.

        ``shrink`` scales the lobes about their centres before the test.
        """
        x, y, z = (points[:, i].astype(np.float32) for i in range(3))
        inside = np.zeros(len(points), bool)
        for lobe in self.lobes:
            inside |= lobe.scaled(shrink).level(x, y, z) <= 0
        inside &= z <= self.diaphragm.height(x, y) - 4 - margin
        body = self.body
        wall = (body.fat_mm + body.muscle_mm + margin) / body.mean_radius
        inside &= body.radius_field(x, y) <= body.scale(z) - wall
        for organ in self.neighbours:
            inside &= organ.level(x, y, z) > margin / float(np.min(organ.semi_axes))
        for cx, cy, radius in self.tubes:
            inside &= np.hypot(x - cx, y - cy) > radius + margin
        return inside

    def litres(self, rng: np.random.Generator, samples: int = 40_000) -> float:
        """Monte Carlo volume of the space in litres."""
        lo = np.min([lobe.bounds()[0] for lobe in self.lobes], axis=0)
        hi = np.max([lobe.bounds()[1] for lobe in self.lobes], axis=0)
        points = rng.uniform(lo, hi, size=(samples, 3))
        return float(self.contains(points).mean() * np.prod(hi - lo) / 1e6)


def _liver_lobes(rng: np.random.Generator, dome: Diaphragm) -> tuple[Ellipsoid, ...]:
    u = rng.uniform
    right_lobe = _organ(
        rng,
        (55 + u(-10, 10), -5 + u(-10, 10), dome.right_top - 65 + u(-10, 10)),
        (u(65, 85), u(70, 90), u(70, 90)),
        wobble=u(0.05, 0.1),
    )
    left_lobe = _organ(
        rng,
        (-20 + u(-10, 10), 40 + u(-5, 10), dome.right_top - 45 + u(-10, 5)),
        (u(50, 75), u(25, 35), u(30, 45)),
        wobble=u(0.05, 0.1),
    )
    return right_lobe, left_lobe


def _sized(rng: np.random.Generator, space: LiverSpace) -> LiverSpace:
    """Scale the lobes so that the liver, as trimmed by its surroundings, has a typical volume."""
    target = rng.uniform(*LIVER_LITRES)
    for _ in range(3):
        factor = (target / space.litres(rng)) ** (1 / 3)
        space = replace(space, lobes=tuple(lobe.scaled(factor) for lobe in space.lobes))
    return space


def _liver_vessels(rng: np.random.Generator, ivc: tuple[float, float, float], dome: Diaphragm) -> tuple[Capsule, ...]:
    """Hepatic veins fanning out from the IVC below the dome, and a portal vein from the hilum."""
    top = np.array([ivc[0], ivc[1], dome.right_top - 25])
    hilum = np.array([25 + rng.uniform(-8, 8), 5 + rng.uniform(-8, 8), dome.right_top - 95])
    directions = [(1.0, 0.3, -0.2), (0.2, 1.0, -0.1), (-0.7, 0.9, 0.0)]
    vessels = []
    for direction in directions:
        d = np.asarray(direction) / np.linalg.norm(direction)
        vessels.append(Capsule(top, top + d * rng.uniform(60, 90), rng.uniform(3.5, 6)))
    for direction in [(1.0, -0.2, 0.5), (-1.0, 0.6, 0.4)]:
        d = np.asarray(direction) / np.linalg.norm(direction)
        vessels.append(Capsule(hilum, hilum + d * rng.uniform(50, 80), rng.uniform(4.5, 7)))
    return tuple(vessels)


def _tumour(rng: np.random.Generator, centre: np.ndarray, hu: Intensities) -> Tumour:
    # One lesion in five is small (5-10 mm across); the rest log-uniform from 10 to 60 mm.
    diameter = rng.uniform(5, 10) if rng.random() < 0.2 else float(np.exp(rng.uniform(np.log(10), np.log(60))))
    semi = diameter / 2 * rng.uniform(0.8, 1.2, size=3)
    outer = Ellipsoid(centre, semi, rotation(rng, 90), SmoothField.random(rng, wavelength_mm=(8, 30)), 0.08)
    hypo_probability = 0.7 if hu.phase == "portal" else 0.3
    if rng.random() < hypo_probability:
        kind, lesion_hu = "hypo", hu.liver - rng.uniform(35, 75)
    else:
        kind, lesion_hu = "hyper", hu.liver + rng.uniform(30, 70)
    layers: list[tuple[Ellipsoid, float]] = [(outer, lesion_hu)]
    rim = kind == "hypo" and rng.random() < 0.4  # rim enhancement: the outer shell brighter than the core
    if rim:
        layers = [(outer, hu.liver + rng.uniform(0, 30)), (outer.scaled(rng.uniform(0.7, 0.85)), lesion_hu)]
    if diameter > 30 and rng.random() < 0.5:  # central necrosis
        layers.append((outer.scaled(rng.uniform(0.35, 0.6)), rng.uniform(10, 35)))
    return Tumour(tuple(layers), kind, rim)


def _tumours(rng: np.random.Generator, space: LiverSpace, hu: Intensities) -> tuple[Tumour, ...]:
    """Draw 0-4 tumours whose centres lie well inside the liver, so each one shows in the labels."""
    count = rng.choice(len(TUMOUR_COUNT_PROBABILITIES), p=TUMOUR_COUNT_PROBABILITIES)
    lo = np.min([lobe.bounds()[0] for lobe in space.lobes], axis=0)
    hi = np.max([lobe.bounds()[1] for lobe in space.lobes], axis=0)
    tumours: list[Tumour] = []
    while len(tumours) < count:
        tumour = _tumour(rng, rng.uniform(lo, hi), hu)
        radius = tumour.diameter_mm / 2
        if space.contains(tumour.layers[0][0].centre[None], margin=min(radius * 0.6, 12), shrink=0.9)[0]:
            tumours.append(tumour)
    return tuple(tumours)


def random_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient: body habitus, organ shapes and positions, tumours and contrast phase."""
    u = rng.uniform
    hu = Intensities.random(rng)
    body = Body.random(rng)
    right_top = u(55, 80)
    dome = Diaphragm(right_top, right_top - u(5, 25))
    vb_radius = u(16, 22)
    spine = Spine(u(-5, 5), -body.semi_posterior + body.fat_mm + u(55, 70), vb_radius, u(28, 34), u(0, 34))
    aorta = (-15 + u(-5, 5), spine.y + vb_radius + 14, u(10, 13))
    ivc = (22 + u(-5, 5), spine.y + vb_radius + 18, u(10, 14))
    gallbladder = None
    if rng.random() < 0.85:
        gallbladder = _organ(
            rng,
            (35 + u(-10, 10), 35 + u(-10, 10), dome.right_top - 120 + u(-10, 10)),
            (u(12, 18), u(12, 18), u(25, 40)),
            turn=30,
        )
    spleen = Ellipsoid(
        np.array([-0.55 * body.semi_lr, -35 + u(-10, 10), dome.left_top - 55 + u(-10, 10)]),
        np.array([u(20, 30), u(40, 60), u(45, 65)]),
        rotation(rng, 10) @ _turn_z(u(15, 35)),
        SmoothField.random(rng),
        0.08,
    )
    kidneys = (
        _organ(
            rng,
            (65 + u(-5, 5), spine.y + 5, dome.right_top - 150 + u(-10, 10)),
            (u(25, 30), u(22, 28), u(45, 60)),
        ),
        _organ(
            rng,
            (-65 + u(-5, 5), spine.y + 10, dome.left_top - 130 + u(-10, 10)),
            (u(25, 30), u(22, 28), u(45, 60)),
        ),
    )
    space = _sized(
        rng,
        LiverSpace(
            _liver_lobes(rng, dome),
            body,
            dome,
            spine,
            (spleen, *kidneys) if gallbladder is None else (spleen, *kidneys, gallbladder),
            (
                aorta,
                ivc,
                (spine.x, spine.y, spine.radius + 12),
                (-35, spine.y - 40, 30),
                (35, spine.y - 40, 30),
            ),
        ),
    )
    stomach = _organ(rng, (-50, 30, dome.left_top - 55), (u(35, 50), u(25, 35), u(40, 60)), wobble=0.1)
    bowel = tuple(
        (
            _organ(
                rng,
                (
                    u(-0.6, 0.6) * body.semi_lr,
                    u(-20, 0.7 * body.semi_anterior),
                    u(-220, dome.right_top - 110),
                ),
                tuple(u(10, 22, size=3)),
                turn=90,
                wobble=0.1,
            ),
            bool(rng.random() < 0.4),
        )
        for _ in range(int(rng.integers(12, 26)))
    )
    return Anatomy(
        hu=hu,
        noise_sd=u(10, 25),
        body=body,
        diaphragm=dome,
        spine=spine,
        rib_period=u(22, 30),
        rib_phase=u(0, 30),
        liver=space.lobes,
        liver_vessels=_liver_vessels(rng, ivc, dome),
        liver_texture=SmoothField.random(rng, terms=3, wavelength_mm=(10, 40)),
        tumours=_tumours(rng, space, hu),
        gallbladder=gallbladder,
        spleen=spleen,
        kidneys=kidneys,
        stomach=stomach,
        stomach_air_level=30 + u(0.0, 0.6) * 30,
        bowel=bowel,
        heart=Ellipsoid(
            np.array([-15, 25, max(dome.right_top, dome.left_top) + 45]),
            np.array([70, 55, 55]),
            np.eye(3),
        ),
        aorta=aorta,
        ivc=ivc,
        psoas=_psoas(spine, dome.right_top - 150),
    )


def _turn_z(degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
