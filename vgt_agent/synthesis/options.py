"""Which synthesis options go together: the rules every caller of the library gets, not only `vgt synth`.

`check_engine` is about where samples run (threads, worker processes, Ray actors, several servers);
`resolve_roles` fills the teacher / extractor / grounding-policy defaults from the data (a world dataset has
a scene graph the rule-based roles read) and refuses roles the data cannot feed; `check_spec` is about the
pipeline itself. Each raises `SynthOptionError` with one line naming the options, which the CLI turns into
exit 2 before anything is written, and `run.run_synth` checks again for programmatic callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vgt_agent.vocabulary import ENGINES, ORACLE, PER_SAMPLE

if TYPE_CHECKING:
    from vgt_agent.synthesis.run import PipelineSpec



class SynthOptionError(ValueError):
    """Options that cannot run together (one line naming them)."""


def check_engine(engine: str, *, workers: int = 1, base_urls: tuple[str, ...] = (), ray_address: str | None = None,
                 ray_gpus: float = 0.0) -> None:
    """Where the samples run: `--workers` processes, or Ray actors (several servers only there)."""
    if engine not in ENGINES:
        raise SynthOptionError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if len(base_urls) > 1 and engine != "ray":
        raise SynthOptionError("several --base-url servers are spread over Ray actors: add --engine ray")
    if engine == "ray" and workers > 1:
        raise SynthOptionError("--workers is the local engine's processes; with --engine ray use --ray-actors")
    if engine != "ray" and (ray_address or ray_gpus):
        raise SynthOptionError("--ray-address / --ray-gpus-per-actor need --engine ray")


@dataclass(frozen=True)
class Roles:
    """Who writes the reasoning (`teacher`), who names its objects (`extract`), who drives the grounder
    (`policy`)."""

    teacher: str
    extract: str
    policy: str


def resolve_roles(via: str, *, world: bool, dataset: str, teacher: str | None = None, extract: str | None = None,
                  policy: str | None = None) -> Roles:
    """The roles with their defaults: on world data the scene-graph ones (oracle teacher when distilling,
    scene extraction, rule policy), elsewhere the model. A scene-graph role on data without one is refused."""
    teacher = teacher or (ORACLE if world and via == "distill" else "model")
    extract = extract or ("scene" if world else "llm")
    policy = policy or ("rule" if world else "vlm")
    if not world:
        if teacher == ORACLE:
            raise SynthOptionError(f"--teacher {teacher} needs a world dataset (its scene graph); {dataset} has none")
        if via == "distill":
            for used, flag in ((extract == "scene", "--extract scene"), (policy == "rule", "--policy rule")):
                if used:
                    raise SynthOptionError(f"{flag} needs a world dataset (its scene graph); {dataset} has none")
    return Roles(teacher, extract, policy)


def check_spec(spec: PipelineSpec, *, world: bool, workers: int = 1) -> None:
    """The pipeline's own rules: what the oracle agent speaks, which grounders need world data, and what
    must not be loaded once per worker process."""
    if spec.oracle_agent and spec.settings.agent_protocol == "function":
        raise SynthOptionError(f"--teacher {spec.teacher} speaks the in-text <ground> protocol only; "
                               "use --protocol text")
    if spec.grounder in PER_SAMPLE and not world:
        raise SynthOptionError(f"--grounder {spec.grounder} needs a world dataset (gold masks)")
    if workers > 1 and spec.grounder == "sam3":
        raise SynthOptionError("--workers > 1 would load SAM3 once per worker; run SAM3 with --workers 1")
    if workers > 1 and spec.needs_model and spec.backend == "transformers":
        raise SynthOptionError("--workers > 1 would load the model once per worker; serve it with an "
                               "OpenAI-compatible server")
