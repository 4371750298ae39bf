import dataclasses
import time

import numpy as np
import pytest
import torch

from xapp.engine.runner import EarlyExitEngine, PlanError, TaskPlan, load_plan, stacked
from xapp.model import Encoder, EncoderConfig, Head, exit_flops, save_head
from xapp.model.policies import Policy, normalised_entropy
from xapp.ops.metrics import Metrics
from xapp.vocab import Request

CFG = EncoderConfig(dim=64, depth=6, heads=4)
MOD = tuple(f"m{i}" for i in range(11))
BEAMS = tuple(f"beam{i:02d}" for i in range(16))


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return Encoder(CFG).eval()


def head(classes, seed: int) -> Head:
    torch.manual_seed(seed)
    return Head(CFG.dim, len(classes)).eval()


def frames(task: str, n: int, seed: int) -> list[Request]:
    rng = np.random.default_rng(seed)
    shape = (16, 64) if task == "beam" else (1, 1024)
    out = []
    for i in range(n):
        x = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
        t = time.monotonic()
        out.append(Request(f"node{i % 2}", task, x, i, "cell0", time.time_ns(), t, t + 1.0))
    return out


def reference(encoder, h: Head, reqs, k: int) -> torch.Tensor:
    with torch.inference_mode():
        x = torch.from_numpy(np.stack([r.frame for r in reqs]))
        return h(encoder(x, [k])[k]).softmax(-1)


def collect(engine, batch, table):
    released = []
    report = engine.run(batch, table, lambda ds: released.append(list(ds)))
    return report, released


def test_fixed_exits_match_full_forward_and_release_shallow_rows_first(encoder):
    hm, hb = head(MOD, 1), head(BEAMS, 2)
    table = {"modulation": TaskPlan("modulation", MOD, {2: hm}), "beam": TaskPlan("beam", BEAMS, {5: hb})}
    mod, beam = frames("modulation", 7, 0), frames("beam", 5, 1)
    metrics = Metrics()
    report, released = collect(EarlyExitEngine(encoder, metrics), mod[:3] + beam + mod[3:], table)
    assert report.deepest == 5 and report.rows == 12
    # modulation rows leave after block 2, in one release, before any beam row
    assert [{d.exit for d in group} for group in released] == [{2}, {5}]
    got = {(d.task, d.seq): d for group in released for d in group}
    for task, reqs, h, k in (("modulation", mod, hm, 2), ("beam", beam, hb, 5)):
        probs = reference(encoder, h, reqs, k)
        for r, p in zip(reqs, probs):
            d = got[(task, r.seq)]
            assert d.class_index == int(p.argmax()) and d.label == table[task].classes[d.class_index]
            assert d.confidence == pytest.approx(float(p.max()), abs=1e-4)
            assert d.node_id == r.node_id and d.t_node_ns == r.t_node_ns
            assert d.gflops == pytest.approx(exit_flops(CFG, 65)[k - 1] / 1e9 + 2 * CFG.dim * len(h.out.bias) / 1e9)
    assert metrics.registry.get_sample_value("xapp_decisions_total", {"task": "beam", "exit": "5"}) == 5


def test_dynamic_confidence_and_entropy_policies(encoder):
    heads = {1: head(MOD, 3), 3: head(MOD, 4), 6: head(MOD, 5)}
    reqs = frames("modulation", 6, 2)
    engine = EarlyExitEngine(encoder, Metrics())
    always = {"modulation": TaskPlan("modulation", MOD, heads, Policy("confidence", threshold=0.0))}
    assert {d.exit for g in collect(engine, reqs, always)[1] for d in g} == {1}
    never = {"modulation": TaskPlan("modulation", MOD, heads, Policy("entropy", threshold=0.0))}
    report, released = collect(engine, reqs, never)
    assert {d.exit for g in released for d in g} == {6} and report.deepest == 6
    # a threshold between the rows' exit-1 confidences splits them: the sure ones leave at 1
    conf1 = reference(encoder, heads[1], reqs, 1).max(-1).values
    cut = float(conf1.median())
    split = {"modulation": TaskPlan("modulation", MOD, heads, Policy("confidence", threshold=cut))}
    exits = {d.seq: d.exit for g in collect(engine, reqs, split)[1] for d in g}
    for r, c in zip(reqs, conf1):
        assert (exits[r.seq] == 1) == (float(c) >= cut)
    entropy1 = normalised_entropy(reference(encoder, heads[1], reqs, 1))
    assert ((entropy1 >= 0) & (entropy1 <= 1)).all()


def test_patience_policy_leaves_when_consecutive_exits_agree(encoder):
    h = head(MOD, 6)
    # the same head at exits 1 and 2: rows whose label does not change between them leave at 2
    heads = {1: h, 2: h, 6: head(MOD, 7)}
    reqs = frames("modulation", 8, 3)
    table = {"modulation": TaskPlan("modulation", MOD, heads, Policy("patience", patience=2))}
    exits = {d.seq: d.exit for g in collect(EarlyExitEngine(encoder, Metrics()), reqs, table)[1] for d in g}
    a, b = reference(encoder, h, reqs, 1).argmax(-1), reference(encoder, h, reqs, 2).argmax(-1)
    for r, x, y in zip(reqs, a, b):
        assert exits[r.seq] == (2 if x == y else 6)


def test_a_fixed_and_a_dynamic_task_read_at_the_same_exit_release_one_group_with_every_field(encoder):
    fixed, first, last = head(MOD, 9), head(BEAMS, 10), head(BEAMS, 11)
    mod = [dataclasses.replace(r, label=f"m{r.seq % 11}") for r in frames("modulation", 6, 6)]
    beam = frames("beam", 6, 7)
    cut = float(reference(encoder, first, beam, 2).max(-1).values.median())
    table = {"modulation": TaskPlan("modulation", MOD, {2: fixed}),
             "beam": TaskPlan("beam", BEAMS, {2: first, 4: last}, Policy("confidence", threshold=cut))}
    metrics = Metrics()
    wall = time.time_ns() - time.monotonic_ns()
    report, released = collect(EarlyExitEngine(encoder, metrics), beam[:3] + mod + beam[3:], table)
    assert report.rows == 12 and report.deepest == 4
    at_2 = released[0]
    assert {d.exit for d in at_2} == {2} and {d.task for d in at_2} == {"modulation", "beam"}
    sure = reference(encoder, first, beam, 2).max(-1).values >= cut
    assert sum(d.task == "beam" for d in at_2) == int(sure.sum())
    got = {(d.task, d.seq): d for group in released for d in group}
    for task, reqs, probs in (("modulation", mod, reference(encoder, fixed, mod, 2)),
                              ("beam", beam, torch.stack([reference(encoder, first, beam, 2)[i] if sure[i] else
                                                          reference(encoder, last, beam, 4)[i] for i in range(6)]))):
        for r, p in zip(reqs, probs):
            d = got[(task, r.seq)]
            assert d.class_index == int(p.argmax()) and d.label == table[task].classes[d.class_index]
            assert d.confidence == pytest.approx(float(p.max()), abs=1e-4)
            assert (d.node_id, d.cell_id, d.t_node_ns, d.truth) == (r.node_id, r.cell_id, r.t_node_ns, r.label)
            assert d.policy == table[task].policy.kind
            assert abs(d.t_arrival_ns - (wall + r.t_arrival * 1e9)) < 5e6
            assert d.t_arrival_ns <= d.t_decision_ns
    for task, k, n in (("modulation", "2", 6), ("beam", "2", int(sure.sum())), ("beam", "4", 6 - int(sure.sum()))):
        assert metrics.registry.get_sample_value("xapp_decisions_total", {"task": task, "exit": k}) == n


def test_rows_of_tasks_without_a_plan_are_counted_not_served(encoder):
    metrics = Metrics()
    table = {"beam": TaskPlan("beam", BEAMS, {1: head(BEAMS, 8)})}
    report, released = collect(EarlyExitEngine(encoder, metrics), frames("beam", 2, 4) + frames("modulation", 3, 5), table)
    assert report.skipped == 3 and sum(len(g) for g in released) == 2
    assert metrics.registry.get_sample_value("xapp_frames_shed_total", {"task": "modulation", "reason": "no_task"}) == 3


def test_load_plan_checks_task_exit_classes_and_file(encoder, tmp_path):
    h = head(MOD, 9)
    path = tmp_path / "mod3.safetensors"
    sha = save_head(path, h, {"task": "modulation", "exit": 3, "classes": list(MOD)})
    plan = load_plan("modulation", [(3, path, sha)], Policy(), encoder, MOD)
    assert plan.exit == 3 and plan.classes == MOD
    with pytest.raises(PlanError, match="head for task 'modulation'"):
        load_plan("beam", [(3, path, None)], Policy(), encoder)
    with pytest.raises(PlanError, match="trained at exit 3, configured at exit 4"):
        load_plan("modulation", [(4, path, None)], Policy(), encoder)
    with pytest.raises(PlanError, match="expected"):
        load_plan("modulation", [(3, path, None)], Policy(), encoder, MOD[::-1])
    with pytest.raises(PlanError, match="sha256"):
        load_plan("modulation", [(3, path, "0" * 64)], Policy(), encoder)
    with pytest.raises(PlanError, match="outside the encoder"):
        load_plan("modulation", [(9, path, None)], Policy(), encoder)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(path.read_bytes()[:100])
    with pytest.raises(PlanError, match="corrupt.safetensors"):
        load_plan("modulation", [(3, corrupt, None)], Policy(), encoder)
    with pytest.raises(PlanError, match="fixed policy reads exactly one exit"):
        TaskPlan("modulation", MOD, {1: h, 3: h})


def test_frames_stack_the_same_whatever_their_layout_or_dtype():
    rng = np.random.default_rng(0)
    contiguous = [(rng.standard_normal((2, 4)) + 1j * rng.standard_normal((2, 4))).astype(np.complex64)
                  for _ in range(3)]
    transposed = [np.ascontiguousarray(f.T).T for f in contiguous]  # same values, not C-contiguous
    wider = [f.astype(np.complex128) for f in contiguous]
    for frames in (contiguous, transposed, wider):
        together = stacked(frames, (2, 4))
        assert together.dtype == frames[0].dtype and np.array_equal(together, np.stack(frames))
    out = np.empty((3, 2, 4), np.complex64)
    assert stacked(contiguous, (2, 4), out=out).base is out and np.array_equal(out, np.stack(contiguous))


def captures(task: str, n: int, seed: int, shape: tuple[int, int]) -> list[Request]:
    rng = np.random.default_rng(seed)
    t = time.monotonic()
    return [Request(f"node{i % 2}", task, (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64),
                    i, "cell0", time.time_ns(), t, t + 1.0) for i in range(n)]


def windowed_reference(encoder, h: Head, reqs, k: int, windows: int) -> torch.Tensor:
    """A frame cut into `windows` in time order, each read as a frame of its own; the mean of their log-probabilities."""
    from xapp.model.heads import read_head

    x = np.stack([r.frame for r in reqs])
    n, antennas, length = x.shape
    w = np.ascontiguousarray(x.reshape(n, antennas, windows, length // windows).transpose(0, 2, 1, 3)).reshape(
        n * windows, antennas, length // windows)
    with torch.inference_mode():
        frames = torch.from_numpy(w)
        logits = read_head(h, encoder(frames, [k])[k], frames).float()
    return logits.log_softmax(-1).reshape(n, windows, -1).mean(1).softmax(-1)


def test_windowed_frames_are_decided_once_from_the_mean_log_probability_of_their_windows(encoder):
    """Tasks reading 1, 2 and 3 windows per frame share one trunk pass; rows leave at three exits, so the
    windowed rows that stay are gathered around the ones that left. A side-feature head reads each window's."""
    torch.manual_seed(7)
    hi = head(MOD, 8)
    hb = head(BEAMS, 9)
    hm = Head(CFG.dim, len(MOD), side="lines", frame_shape=(1, 1024)).eval()
    table = {
        "interference": TaskPlan("interference", MOD, {2: hi}, frame_shape=(1, 1024)),
        "beam": TaskPlan("beam", BEAMS, {3: hb}, windows=2, frame_shape=(16, 64)),
        "modulation": TaskPlan("modulation", MOD, {4: hm}, windows=3, frame_shape=(1, 1024)),
    }
    intf, beam, mod = captures("interference", 5, 10, (1, 1024)), captures("beam", 4, 11, (16, 128)), captures(
        "modulation", 6, 12, (1, 3072))
    metrics = Metrics()
    report, released = collect(EarlyExitEngine(encoder, metrics), [mod[0], *beam[:2], *intf, *mod[1:4], *beam[2:], *mod[4:]],
                               table)
    assert report.rows == 15 and report.deepest == 4
    assert [{d.task for d in group} for group in released] == [{"interference"}, {"beam"}, {"modulation"}]
    got = {(d.task, d.seq): d for group in released for d in group}
    for task, reqs, h, k, windows in (("interference", intf, hi, 2, 1), ("beam", beam, hb, 3, 2), ("modulation", mod, hm, 4, 3)):
        probs = windowed_reference(encoder, h, reqs, k, windows)
        for r, p in zip(reqs, probs):
            d = got[(task, r.seq)]
            assert d.class_index == int(p.argmax()) and d.exit == k
            assert d.confidence == pytest.approx(float(p.max()), abs=1e-4)
            assert d.gflops == pytest.approx(windows * (exit_flops(CFG, 65)[k - 1] + h.flops(65)) / 1e9)


def test_a_dynamic_policy_reads_a_frames_windows_together(encoder):
    heads = {1: head(MOD, 13), 3: head(MOD, 14)}
    reqs = captures("modulation", 5, 15, (1, 2048))
    plan = TaskPlan("modulation", MOD, heads, Policy("confidence", threshold=0.0), windows=2, frame_shape=(1, 1024))
    _, released = collect(EarlyExitEngine(encoder, Metrics()), reqs, {"modulation": plan})
    decisions = [d for group in released for d in group]
    assert {d.exit for d in decisions} == {1}
    probs = windowed_reference(encoder, heads[1], reqs, 1, 2)
    assert [d.class_index for d in sorted(decisions, key=lambda d: d.seq)] == probs.argmax(-1).tolist()


def test_frames_not_of_the_shape_a_plan_serves_are_counted_and_leave_the_rest_alone(encoder):
    """After a reload that changes a task's windows, frames queued in the old shape are shed as `shape`."""
    plan = TaskPlan("modulation", MOD, {2: head(MOD, 16)}, windows=2, frame_shape=(1, 1024))
    stale, fresh = captures("modulation", 3, 17, (1, 1024)), captures("modulation", 2, 18, (1, 2048))
    metrics = Metrics()
    report, released = collect(EarlyExitEngine(encoder, metrics), [stale[0], fresh[0], *stale[1:], fresh[1]],
                               {"modulation": plan})
    assert report.rows == 2 and report.skipped == 3
    assert sorted(d.seq for group in released for d in group) == [0, 1]
    assert metrics.registry.get_sample_value("xapp_frames_shed_total", {"task": "modulation", "reason": "shape"}) == 3
    with pytest.raises(PlanError, match="windows must be at least 1"):
        TaskPlan("modulation", MOD, {2: head(MOD, 16)}, windows=0)
