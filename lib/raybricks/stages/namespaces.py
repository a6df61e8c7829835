"""Namespaces: a named actor is visible only inside its namespace.

A driver picks its namespace when it connects: `ray.init(namespace="jobs")`; this job
takes it from `namespace` in the settings. A name is unique within a namespace, so:

- a driver in the same namespace finds the actor with `ray.get_actor("probe")`;
- a driver in another namespace does not (`ValueError`), however the name is spelled;
- the same name can live in two namespaces at once, as two different actors;
- `ray.get_actor("probe", namespace="jobs")` reaches across on purpose.

"Another driver" here is a second process, because that is what "somewhere else" is.
"""

from __future__ import annotations

from typing import Any

import ray

from raybricks.stages.base import Stage, StageContext, expect
from raybricks.stages.elsewhere import run_elsewhere
from raybricks.stages.params import NamespacesParams


@ray.remote(num_cpus=0)
class Probe:
    """A named actor that says which namespace its name was registered in.

    (Not `ray.get_runtime_context().namespace`: inside an actor that is the namespace of
    the job that created it, which may differ from the one its name lives in.)"""

    def __init__(self, registered_in: str) -> None:
        self.registered_in = registered_in

    def where(self) -> str:
        return self.registered_in


class Namespaces(Stage[NamespacesParams]):
    summary = "named actors are found in their namespace only, unless asked across"
    Params = NamespacesParams

    @staticmethod
    def headline(evidence: dict[str, Any]) -> str:
        other = evidence["from_other_driver"]
        return (
            f"{evidence['actor_name']!r} found in {evidence['namespace']} only "
            f"(from {other['namespace']}: not plainly, across: yes); one name, "
            f"{'two actors' if evidence['two_distinct_actors'] else 'one actor'} in two namespaces"
        )

    def run(self, ctx: StageContext, params: NamespacesParams) -> None:
        home = ray.get_runtime_context().namespace
        other = f"{home}{params.other_namespace_suffix}"
        name = params.actor_name
        ctx.record(namespace=home, other_namespace=other, actor_name=name)
        probes = []
        try:
            probes.append(Probe.options(name=name).remote(home))  # type: ignore[attr-defined]
            expect(ray.get(ray.get_actor(name).where.remote()) == home, "not found at home")
            ctx.record(found_from_same_namespace=True)

            seen = run_elsewhere(look_up, namespace=other, name=name, across=home)
            ctx.record(from_other_driver=seen)
            expect(not seen["found_plainly"], f"a driver in {other!r} found {name!r} of {home!r}")
            expect(seen["found_across"] == home, f"get_actor(namespace={home!r}) failed: {seen}")

            twin = Probe.options(name=name, namespace=other).remote(other)
            probes.append(twin)
            handles = [ray.get_actor(name, namespace=ns) for ns in (home, other)]
            both = [ray.get(handle.where.remote()) for handle in handles]
            distinct = handles[0]._actor_id != handles[1]._actor_id
            ctx.record(same_name_in_both=both, two_distinct_actors=distinct)
            expect(both == [home, other] and distinct, f"one name in two namespaces: {both}")
        finally:
            for probe in probes:
                ray.kill(probe)


def look_up(name: str, across: str) -> dict[str, Any]:
    """Runs in another driver, connected in another namespace."""
    try:
        ray.get_actor(name)
        found_plainly = True
    except ValueError:
        found_plainly = False
    probe: Any = ray.get_actor(name, namespace=across)
    found_across = ray.get(probe.where.remote())
    return {
        "namespace": ray.get_runtime_context().namespace,
        "found_plainly": found_plainly,
        "found_across": found_across,
    }
