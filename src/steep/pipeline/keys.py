"""Every Redis key of the pipeline, in one place.

All of them carry the hash tag `{pipeline}`, so the pipeline's records share one
Redis Cluster slot and each of its Lua scripts touches that slot only. What they
hold is listed in docs/pipeline.md ("Where things live").
"""

from __future__ import annotations

from dataclasses import dataclass

from steep.settings import get_settings


@dataclass(frozen=True, slots=True)
class PipelineKeys:
    namespace: str

    @classmethod
    def current(cls) -> PipelineKeys:
        return cls(get_settings().namespace)

    @property
    def _base(self) -> str:
        return f"{self.namespace}:{{pipeline}}"

    def run(self, run_id: str) -> str:
        """HASH: `meta` (JSON), `state`, `reason`, `started`, `finished`, `plan` (JSON),
        `step:<name>` (JSON, one per step), `status_error`; `woken:<step>` (how many
        times a person's decision on its deploy ran the step again), `waited` (seconds
        spent waiting for a person, not counted against the run's timeout); a merge
        (steep.pipeline.gate) adds `gate_state`, `gate_line`, `gate_head`, `gate_ff`,
        `gate_ref`, `gate_run`."""
        return f"{self._base}:run:{run_id}"

    @property
    def runs(self) -> str:
        """ZSET run id -> created (ms): every run of every project, newest last."""
        return f"{self._base}:runs"

    def project_runs(self, project: str) -> str:
        """ZSET run id -> created (ms): one project's runs."""
        return f"{self._base}:project:{project}:runs"

    def seq(self, project: str) -> str:
        """STRING counter: the number of the project's next run (`shop-42`)."""
        return f"{self._base}:project:{project}:seq"

    def active(self, project: str, lane: str) -> str:
        """SET of unfinished run ids of one branch or pull request (`branch:main`, `pr:7`):
        what a newer run of the same lane supersedes."""
        return f"{self._base}:project:{project}:active:{lane}"

    def latest(self, project: str) -> str:
        """HASH lane (`branch:main`, `pr:7`) -> the id of its newest run."""
        return f"{self._base}:project:{project}:latest"

    def built(self, project: str, lane: str, sha: str) -> str:
        """STRING run id, with a TTL: this commit of this lane has a run already (a push
        seen by both the webhook and the poller builds once)."""
        return f"{self._base}:project:{project}:built:{lane}:{sha}"

    def merges(self, project: str, target: str) -> str:
        """ZSET run id -> created (ms): the merges into `target` not yet settled, oldest
        first. The first is the one being tested; the others wait for their turn."""
        return f"{self._base}:project:{project}:merges:{target}"

    def heads(self, project: str) -> str:
        """HASH branch -> sha: what the poller last saw on the remote."""
        return f"{self._base}:project:{project}:heads"

    def poll_lock(self, project: str) -> str:
        """STRING with a TTL of the project's poll interval: one poll per interval, by
        whichever worker gets there first."""
        return f"{self._base}:project:{project}:poll"

    def deliveries(self, project: str) -> str:
        """LIST (capped) of JSON records of the webhook deliveries received, newest first."""
        return f"{self._base}:project:{project}:deliveries"

    def delivery(self, forge: str, delivery_id: str) -> str:
        """STRING with a TTL: this delivery id was handled (a redelivery does nothing)."""
        return f"{self._base}:delivery:{forge}:{delivery_id}"

    def environments(self, project: str) -> str:
        """SET of the names of a project's environments that have been deployed or locked."""
        return f"{self._base}:project:{project}:envs"

    def environment(self, project: str, env: str) -> str:
        """HASH: what runs in an environment (`release`, `sha`, `tree`, `digest`,
        `deployed_at`, `deploy`, `state`), and its lock (`locked_by`, `lock_reason`)."""
        return f"{self._base}:project:{project}:env:{env}"

    def deploys(self, project: str, env: str) -> str:
        """ZSET deploy id -> started (ms): an environment's deploys."""
        return f"{self._base}:project:{project}:env:{env}:deploys"

    def deploying(self, project: str, env: str) -> str:
        """STRING deploy id, with a TTL renewed while it runs: one deploy at a time."""
        return f"{self._base}:project:{project}:env:{env}:deploying"

    def deploy_next(self, project: str, env: str) -> str:
        """STRING deploy id, with a TTL renewed while it waits: the one deploy waiting for
        `deploying` to end (a newer one takes its place, pipeline_claim_deploy.lua)."""
        return f"{self._base}:project:{project}:env:{env}:next"

    def superseded(self, project: str, env: str) -> str:
        """HASH deploy id -> the id of the newer deploy that took its place while it waited."""
        return f"{self._base}:project:{project}:env:{env}:superseded"

    def copies(self, project: str, env: str) -> str:
        """LIST of the ids of the data copies into an environment, newest first, capped
        (steep.pipeline.data_copies)."""
        return f"{self._base}:project:{project}:env:{env}:copies"

    def data_copy(self, copy_id: str) -> str:
        """STRING: a data copy's record (JSON), expiring after 90 days."""
        return f"{self._base}:copy:{copy_id}"

    def deploy(self, deploy_id: str) -> str:
        """STRING: a deploy's record (JSON), its phases appended as they complete."""
        return f"{self._base}:deploy:{deploy_id}"

    def log(self, run_id: str, step: str) -> str:
        """STREAM of one step's output lines (`l`: the line), capped."""
        return f"{self._base}:log:{run_id}:{step}"
