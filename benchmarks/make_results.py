"""Render benchmarks/RESULTS.md from the JSON files in benchmarks/results/.

    python benchmarks/make_results.py

Every figure in RESULTS.md comes from a JSON file written by a benchmark script; each section
names the command, date and machine that produced it.
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
TARGETS_1M = {"recall_at_1": 0.95, "p50_ms": 1.0, "bytes_per_vector": 48.0}


def load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def provenance(d: dict) -> str:
    return f"_Command:_ `{d['command']}` — _date:_ {d['date']} — _machine:_ {d.get('machine', '?')}"


def _interval_table(per_set: dict, title: str, legend: str) -> list[str]:
    """One row per set, one column per method: ``_interval`` of each paired bootstrap."""
    if not per_set:
        return []
    methods = sorted({m for rows in per_set.values() for m in rows})
    out = [f"### {title}", "", legend, "", "| set | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for name, rows in per_set.items():
        out.append(f"| {name} | " + " | ".join(_interval(rows[m]) if m in rows else "-" for m in methods) + " |")
    return out + [""]


def generalization_section(d: dict, before: dict | None = None) -> list[str]:
    """The generalization suite: per-set quality of every configuration and peer, the
    foreign-photo matrix, calibration honesty, intervals against the floor and the targets."""
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    out = ["## Generalization suite", "", provenance(d), "",
           "Every query through `MapBuilder` / `Localizer` (placekit rows) or exhaustive search (peers). "
           "`localized` precision: share of `localized` answers whose top place is correct. `claimed`: the "
           "precision `map info` reports at the threshold (in-map and out-of-map answers weighted equally); "
           "`measured`: the same quantity measured, the set's queries and the foreign photos weighted "
           "equally, with a 95% bootstrap interval. `foreign unknown`: share of photos of the other sets and "
           "the pool answered `unknown` by this set's map (no negatives given).", ""]
    for name, rows in d["sets"].items():
        out += [f"### {name}", "",
                "| method | recall@1 | recall@5 | localized | unknown | precision of localized | claimed | measured | "
                "foreign unknown | p50 ms | bytes/place |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for method, r in rows.items():
            ci = r.get("measured_precision_interval")
            measured = f"{f(r.get('measured_precision'))} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f(r.get("measured_precision"))
            out.append(f"| {method} | {r['recall_at_1']:.3f} | {r['recall_at_5']:.3f} | {f(r.get('localized_share'))} | "
                       f"{f(r.get('unknown_share'))} | {f(r.get('localized_precision'))} | {f(r.get('claimed_precision'))} | "
                       f"{measured if 'unknown_share' in r else '-'} | {f(r.get('foreign_unknown_all'))} | "
                       f"{r['latency_ms_p50']:.1f} | {r['bytes_per_place']:.0f} |")
        out.append("")
    out += _interval_table(d.get("intervals_vs_floor") or {},
                           "Recall@1 minus the raw ImageNet GeM 1280-D (exact), paired bootstrap 95% intervals",
                           "**bold**: the whole interval above 0; _italic_: below 0.")
    out += _interval_table(d.get("intervals_vs_default") or {},
                           "Recall@1 of each peer minus the default, paired bootstrap 95% intervals",
                           "**bold**: the peer is better beyond the noise; _italic_: worse.")
    default_rows = {name: rows["default"] for name, rows in d["sets"].items() if "foreign_unknown" in rows.get("default", {})}
    if default_rows:
        sources = sorted({src for r in default_rows.values() for src in r["foreign_unknown"]})
        counts = {k: v for per_map in d["foreign_sources"].values() for k, v in per_map.items()}
        out += ["### Foreign-photo matrix (default options, no negatives): share answered `unknown`", "",
                "Rows: the map; columns: where the photos come from (photos per source: "
                f"{', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}). A dusk set's map is its clean "
                "set's map (same database), so its row repeats.", "",
                "| map | " + " | ".join(sources) + " | all |", "|---|" + "---:|" * (len(sources) + 1)]
        for name, r in default_rows.items():
            out.append(f"| {name} | " + " | ".join(f(r["foreign_unknown"].get(src)) for src in sources)
                       + f" | {f(r['foreign_unknown_all'])} |")
        out += ["", "### Targets (default options)", "",
                "| set | foreign unknown >= 0.95 | precision of localized >= 0.9 | claimed within 0.05 of measured "
                "(or inside its interval) | recall@1 within 0.02 of before |", "|---|---|---|---|---|"]
        for name, r in default_rows.items():
            ci = r.get("measured_precision_interval")
            claim, meas = r.get("claimed_precision"), r.get("measured_precision")
            honest = (claim is not None and meas is not None
                      and (abs(claim - meas) <= 0.05 or (ci and ci[0] <= claim <= ci[1])))
            prec = r.get("localized_precision")
            old = ((before or {}).get("sets", {}).get(name) or {}).get("default")
            recall = "-" if old is None else (f"{'yes' if r['recall_at_1'] >= old['recall_at_1'] - 0.02 else 'no'} "
                                              f"({old['recall_at_1']:.3f} -> {r['recall_at_1']:.3f})")
            out.append(f"| {name} | {'yes' if r['foreign_unknown_all'] >= 0.95 else 'no'} ({r['foreign_unknown_all']:.2f}) | "
                       f"{'-' if prec is None else ('yes' if prec >= 0.9 else 'no')} ({f(prec)}) | "
                       f"{'yes' if honest else 'no'} ({f(claim)} vs {f(meas)}) | {recall} |")
        out.append("")
    if before:
        out += [f"### Before this suite's fixes (default options at commit {before.get('commit', '?')})", "",
                provenance(before), "", before.get("note", ""), "",
                "| set | recall@1 | localized | precision of localized | claimed | measured | foreign unknown |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for name, rows in before["sets"].items():
            r = rows.get("default")
            if r:
                out.append(f"| {name} | {r['recall_at_1']:.3f} | {f(r['localized_share'])} | {f(r['localized_precision'])} | "
                           f"{f(r['claimed_precision'])} | {f(r.get('measured_precision'))} | {f(r.get('foreign_unknown_all'))} |")
        out.append("")
    return out


def fuzz_inputs_section(d: dict) -> list[str]:
    out = ["## Fuzzed inputs (images, arrays, CSVs, options, live-map edits)", "", provenance(d), "",
           f"{d['cases']:,} cases with model `{d.get('model')}` in {d.get('seconds', 0):.0f} s; only `PlacekitError` "
           "subclasses may escape, and every live-map edit sequence must leave exactly the places a model of the "
           "map expects (ids never reused).", "",
           "| kind | cases | accepted | typed error (PlacekitError) |", "|---|---:|---:|---:|"]
    for kind, c in d["counts"].items():
        out.append(f"| {kind} | {c['cases']:,} | {c['ok']:,} | {c['placekit_error']:,} |")
    out += ["", f"**Failures (any other exception or a wrong map): {len(d['failures'])}.**", ""]
    return out


def soak_faults_section(d: dict) -> list[str]:
    growth = d.get("rss_growth_after_warmup")
    return ["## Soak with faults (writer killed mid-save)", "", provenance(d), "",
            f"{d['seconds'] / 60:.0f} minutes: 2 reader threads made {d['reader_calls']:,} `localize` calls (reopening "
            f"the map every 200), while a writer process adding, removing and saving places "
            f"({d.get('completed_saves', 0):,} completed saves) was killed with SIGKILL {d['writer_kills']:,} times. After every kill the map opened with every member verified "
            f"({d['post_kill_checks']:,} checks) and held the last completed save or the one in progress.", "",
            f"- reader errors: {len(d['reader_errors'])}; integrity failures: {len(d['integrity_failures'])}",
            f"- reader RSS growth after warm-up: {'-' if growth is None else f'{100 * growth:.2f}%'}",
            f"- temp files left by killed saves (a SIGKILL cannot clean up; the next save is unaffected): "
            f"{d['temp_files_left_by_kills']}", ""]


def input_size_section(d: dict) -> list[str]:
    sets = [k for k in d["rows"][0] if k != "sizes"]
    out = ["## Default GeM input size (training-side validation only)", "", provenance(d), "",
           "recall@1 of `gem-imagenet-fp32` at single input sizes (long side) and multi-scale averages; "
           "`whitened`: PCA-whitened on the other images, as a map whitens itself. No suite set is read.", "",
           "| sizes | " + " | ".join(f"{s} raw | {s} whitened" for s in sets) + " |",
           "|---|" + "---:|" * (2 * len(sets))]
    for r in d["rows"]:
        out.append(f"| {'+'.join(map(str, r['sizes']))} | "
                   + " | ".join(f"{r[s]['raw']:.3f} | {r[s]['whitened']:.3f}" for s in sets) + " |")
    queries = ", ".join(f"{s}: {d['rows'][0][s]['queries']} queries" for s in sets)
    return out + ["", f"({queries}; one query is worth {100 / min(d['rows'][0][s]['queries'] for s in sets):.1f} "
                      "points on the smaller set.)", ""]


def index_section(d: dict) -> list[str]:
    out = ["## Index search", "", provenance(d), "",
           "Clustered 256-D unit vectors (`benchmarks/synthetic.py`); recall@1 is against exact float32 "
           "search; latency is one query at a time on one thread for every method; bytes per vector are "
           "what a search keeps in RAM (placekit: PQ codes, ids, list offsets, coarse graph, centroid norms, "
           "rotation, codebooks; its fp16 re-rank vectors stay memory-mapped in the map file and are listed "
           "separately); build time uses both cores.", "",
           "| N | method | recall@1 | p50 ms | p99 ms | bytes/vector in RAM | build s |",
           "|---:|---|---:|---:|---:|---:|---:|"]
    for r in d["results"]:
        out.append(f"| {r['n']:,} | {r['method']} | {r['recall_at_1']:.3f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} "
                   f"| {r['bytes_per_vector']:.1f} | {r['build_s']:.1f} |")
    ours = [r for r in d["results"] if r["n"] == 1_000_000 and r["method"].startswith("placekit")
            and r.get("rerank")]
    if ours:
        r = ours[0]
        peers = {p["method"]: p for p in d["results"] if p["n"] == 1_000_000}
        out += ["", "Targets at 1M with 32-byte codes, measured:", ""]
        for key, label, better in (("recall_at_1", "recall@1 >= 0.95 of exact", "ge"),
                                   ("p50_ms", "p50 search <= 1 ms", "le"),
                                   ("bytes_per_vector", "<= 48 bytes per place in RAM", "le")):
            ok = r[key] >= TARGETS_1M[key] if better == "ge" else r[key] <= TARGETS_1M[key]
            out.append(f"- {label}: **{r[key]:.3f}** ({'met' if ok else 'missed'})")
        out.append(f"- re-rank store on disk: {r.get('refine_store_bytes_per_vector', 0):.0f} bytes per place (fp16), "
                   "memory-mapped")
        numpy_row = next((p for m, p in peers.items() if m.startswith("numpy")), None)
        faiss_row = next((p for m, p in peers.items() if m.startswith("faiss IndexIVFPQ")), None)
        if numpy_row:
            out.append(f"- speed-up over NumPy brute force: {numpy_row['p50_ms'] / r['p50_ms']:.0f}x at "
                       f"{1024 / r['bytes_per_vector']:.0f}x less RAM")
        if faiss_row:
            out.append(f"- vs faiss IndexIVFPQ (same lists, same codes, no re-rank): {r['p50_ms'] / faiss_row['p50_ms']:.1f}x "
                       f"its latency, recall {r['recall_at_1']:.3f} vs {faiss_row['recall_at_1']:.3f}")
    return out + [""]


def map_section(d: dict) -> list[str]:
    v, u = d["verified"], d["unverified"]
    mb = lambda b: f"{b / 1e6:.1f} MB"  # noqa: E731
    return ["## Map open", "", provenance(d), "",
            f"A {d['places']:,}-place map of 1280-D descriptors, recipe `{d['recipe']}`, file {mb(d['file_bytes'])}, "
            f"PQ codes {mb(d['code_bytes'])}. Fresh process per open, page cache warm.", "",
            "| | open ms (median) | RSS growth after open | of which anonymous | RSS growth after 1,000 searches | anonymous | file-backed (mapped pages read) |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *[f"| {name} | {x['open_ms_median']:.1f} | {mb(x['rss_growth_after_open_bytes'])} | "
              f"{mb(x['anon_growth_after_open_bytes'])} | {mb(x['rss_growth_after_1000_queries_bytes'])} | "
              f"{mb(x['anon_growth_after_1000_queries_bytes'])} | {mb(x['file_backed_growth_after_1000_queries_bytes'])} |"
              for name, x in (("sha256 of every member verified (default)", v), ("verify_map=False", u))],
            "", f"Targets: open < 100 ms; resident memory within 2x the code bytes ({mb(2 * d['code_bytes'])}).", ""]


def localize_section(d: dict) -> list[str]:
    out = ["## localize(frame) end to end", "", provenance(d), "",
           f"Model `{d['model']}` at its default input size; map of {d['map_places']} places (the demo street); frames "
           f"passed as BGR arrays. JPEG decoding of a 640x480 file, not part of `localize`: "
           f"{d['jpeg_decode_640x480_ms']:.2f} ms.", "",
           "| frame | threads | decode p50/p99 | extract p50/p99 | search p50/p99 | decide p50/p99 | total p50/p99 |",
           "|---|---:|---|---|---|---|---|"]
    for r in d["runs"]:
        s = r["stages"]
        cell = lambda k: f"{s[k]['p50_ms']:.2f} / {s[k]['p99_ms']:.2f}"  # noqa: E731
        out.append(f"| {r['frame']} | {r['threads']} | {cell('decode')} | {cell('extract')} | {cell('search')} "
                   f"| {cell('decide')} | {cell('total')} |")
    return out + ["", "(ms; `decode` here is validation and colour conversion of the array.)", ""]


def localize_verified_section(d: dict) -> list[str]:
    out = ["## localize(frame) with verification and a pose, per stage", "", provenance(d), "",
           *([f"**{d['note']}**", ""] if d.get("note") else []),
           "Strecha fountain-P11 and Herz-Jesus-P25 (HardNet training scenes, so the settings can be chosen here): "
           "maps of the even-numbered images with their cameras and each configuration's local features; queries the "
           "odd-numbered images as 640x480 BGR frames with their intrinsics; verification of the top "
           f"{d['verify_top']} places and PnP. `GeM only` is the same map opened with `verify=False`, in the same "
           "run. Configurations: local features, detector, keypoints per map image / per query, and the long side "
           "the local features are found at when not 640 px (the default until 480 px became it). Local features are extracted on a worker "
           "thread while GeM describes the frame (`LocalizerOptions.overlap_local_features`, the default) unless the "
           "configuration says `stages in sequence`; with the overlap, `local features` is the wait for them after "
           "the search. Verification stops at the first place with 3 x the map's inlier floor "
           "(`LocalizerOptions.verify_early_exit`). In brackets: the range of the p50 over the repeated timed passes "
           "(`--repeats`). Target (issue 16): total p50 <= 80 ms, p99 <= 150 ms.", "",
           "| scene | configuration | extract | local features | verify | pose | total p50 / p99 | x GeM only | with a pose |",
           "|---|---|---:|---:|---:|---:|---|---:|---:|"]
    gem = {r["scene"]: r["stages"]["total"]["p50_ms"] for r in d["runs"] if r["config"] == "GeM only"}
    for r in d["runs"]:
        s = r["stages"]
        cell = lambda k: f"{s[k]['p50_ms']:.1f}" if k in s else "-"  # noqa: E731
        ratio = s["total"]["p50_ms"] / gem[r["scene"]] if r["scene"] in gem else float("nan")
        passes = r.get("total_p50_ms_per_run", [])
        spread = f" ({min(passes):.0f}-{max(passes):.0f})" if len(passes) > 1 else ""
        out.append(f"| {r['scene']} | {r['config']} | {cell('extract')} | {cell('local_features')} | {cell('verify')} "
                   f"| {cell('pose')} | {s['total']['p50_ms']:.1f}{spread} / {s['total']['p99_ms']:.1f} | {ratio:.1f} "
                   f"| {r['pose_share']:.2f} |")
    return out + ["", "(ms, 2 threads.)", ""]


def wxbs_section(d: dict) -> list[str]:
    out = ["## Local features on WxBS (wide baseline: day/night, seasons, viewpoint)", "", provenance(d), "",
           f"33 pairs, evaluation only (`benchmarks/bench_wxbs.py` docstring). Up to {d['keypoints']} keypoints per "
           f"image at <= {d['max_side']} px; mutual nearest neighbours + ratio test; USAC F. A pair agrees when the "
           "hand-labelled correspondences lie within twice their own labelling noise (mean symmetric epipolar "
           "distance, at least 2 px) of the estimated F.", "",
           "| method | pairs agreeing | mean error <= 5 / 10 / 20 px | median error px | ms per image p50 "
           "| ms per 640x480 frame, 1 / 2 threads |",
           "|---|---:|---|---:|---:|---|"]
    for name, r in d["results"].items():
        w = r["within_px"]
        med = r["median_error_px"]
        out.append(f"| {name} | {r['agree_share']:.2f} | {w['5']:.2f} / {w['10']:.2f} / {w['20']:.2f} "
                   f"| {'-' if med == float('inf') else f'{med:.1f}'} | {r['ms_per_image_p50']:.1f} "
                   f"| {r.get('ms_per_640x480_frame_threads_1', float('nan')):.1f} / "
                   f"{r.get('ms_per_640x480_frame_threads_2', float('nan')):.1f} |")
    return out + [""]


def fuzz_section(d: dict) -> list[str]:
    return ["## Map file fuzzing", "", provenance(d), "",
            f"{d['cases']:,} random mutations (byte flips, truncations, deleted / duplicated / zeroed spans, appended "
            f"garbage) of `{d['source']}`, each opened with `PlaceMap.load` and searched. Outcomes: "
            + ", ".join(f"{k}: {v:,}" for k, v in d["outcomes"].items())
            + f". Other exceptions escaping: **{len(d['escaped'])}**.", ""]


def models_section(d: dict) -> list[str]:
    peak = d["peak_gflops"]
    out = ["## Model extraction latency", "", provenance(d), "",
           f"A {d['frame'][1]}x{d['frame'][0]} frame resized to each long side (H, W multiples of 32); HardNet on "
           f"batches of 512 patches. Measured float32 peak of this machine (best 2048^2 matrix product of NumPy and "
           f"ONNX Runtime, the float32 GEMM reference): "
           f"{peak['1']:.0f} GFLOP/s on 1 thread, {peak['2']:.0f} on 2. FLOPs are counted from the ONNX fp32 graph "
           "(2 x multiply-adds of Conv / Gemm / MatMul); the peer's figure is its published 300M multiply-adds. "
           "'vs GEMM' is the achieved rate over that float32 GEMM reference: convolution kernels can beat it "
           "(so it is a reference, not a hard peak), and int8 kernels do far more.", "",
           "| model | format | precision | threads | input | p50 ms | p90 ms | GFLOPs / frame (or patch) | achieved GFLOP/s | vs GEMM | patches/s |",
           "|---|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in d["rows"]:
        gf = f"{r['gflops_per_frame']:.3f}" if r.get("gflops_per_frame") else "-"
        share = f"{100 * r['share_of_peak']:.0f}%" if r.get("share_of_peak") else "-"
        rate = "-"
        if r.get("gflops_per_frame"):
            per_call = r["gflops_per_frame"] * (r["input"][0] if r["kind"] == "local" else 1)
            rate = f"{per_call / (r['p50_ms'] / 1000):.0f}"
        pps = f"{r['patches_per_s']:,.0f}" if r.get("patches_per_s") else "-"
        shape = "x".join(str(v) for v in r["input"])
        out.append(f"| {r['model']} | {r['format']} | {r['precision']} | {r['threads']} | {shape} | {r['p50_ms']:.2f} "
                   f"| {r['p90_ms']:.2f} | {gf} | {rate} | {share} | {pps} |")
    out += ["", "Sizes on disk: " + ", ".join(f"`{s['model']}` {s['bytes'] / 1e6:.2f} MB" for s in d["sizes"]), ""]
    return out


def int8_section(d: dict) -> list[str]:
    out = [f"## GeM int8: parity gate (`{d['model']}`)", "", provenance(d), "",
           f"int8 exports of `{d['model']}` checked against PyTorch on {d.get('parity_images', '32 held-out Strecha photos')} "
           f"(calibration: {d.get('calibration', 'the 62 pool photos')}). Gate: mean cosine >= 0.98 and top-1 agreement "
           ">= 0.95 on decisive items (two best PyTorch neighbours at least 0.005 apart; the share over all items is "
           "reported beside it). Rejected files are not shipped. TFLite variants: `body` quantizes convolutions and "
           "residual additions (the shipped recipe), `full` every op ai-edge-quantizer supports, GeM head included.", "",
           "| format | variant | bias correction | min cosine | mean cosine | top-1 agreement (decisive) | (all) | "
           "p50 ms, 2 threads | accepted |",
           "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in d["rows"]:
        out.append(f"| {r['format']} | {r.get('variant', '-')} | {'on' if r['bias_correction'] else 'off'} | "
                   f"{r['min_cosine']:.4f} | {r['mean_cosine']:.4f} | {r['top1_agreement']:.3f} | "
                   f"{r.get('top1_agreement_all', float('nan')):.3f} | {r.get('p50_ms_2_threads', float('nan')):.2f} | "
                   f"{'yes' if r['accepted'] else '**no**'} |")
    if d["model"] != "gem-imagenet":
        return out + [""]
    return out + ["", "Why the gate counts decisive items: on the first parity set (32 Strecha photos) this int8 "
                  "export kept a mean cosine of 0.9975 but only 0.875 top-1 agreement; every photo that changed its "
                  "top-1 had its two best PyTorch neighbours within 0.0035 cosine (near-identical views of one facade), "
                  "and every photo with a margin of at least 0.005 kept it.", ""]


def real_data_section(d: dict) -> list[str]:
    out = ["## Real data through `placekit eval`", "", provenance(d), "",
           f"Model `{d['model']}` (off-the-shelf, not trained for places); datasets laid out by "
           "`benchmarks/real_data_suite.py` (its docstring gives the splits and thresholds).", "",
           "| dataset | threshold m | queries | map images | recall@1 | @5 | @10 | median error m | p90 error m "
           "| localized / ambiguous / unknown | precision of localized | latency p50 ms | bytes per place |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    fmt = lambda v, p=3: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
    for name, r in d["datasets"].items():
        sh = r["status_shares"]
        out.append(f"| {name} | {r['threshold_m']:.0f} | {r['n_queries']} | {r['n_database']} | {fmt(r['recall_at_1'])} "
                   f"| {fmt(r['recall_at_5'])} | {fmt(r['recall_at_10'])} | {fmt(r['median_position_error_m'], 2)} "
                   f"| {fmt(r['p90_position_error_m'], 2)} | {sh['localized']:.2f} / {sh['ambiguous']:.2f} / "
                   f"{sh['unknown']:.2f} | {fmt(r['localized_precision'])} | {fmt(r['latency_ms_p50'], 1)} "
                   f"| {r['map_bytes_per_place']:.0f} |")
    ie = d["datasets"].get("ie-tower")
    if ie and ie.get("calibration"):
        st = ie["calibration"]["stats"]
        out += ["", f"IE Tower: the map is calibrated with the clip as capture group ({st.get('groups')}): each frame is "
                f"judged only against other clips, as a later visit would be. On the map's own frames the top match from "
                f"another clip is right for {st['positives']} and wrong for {st['wrong_top1']}; reaching the target "
                f"precision ({ie['calibration']['target_precision']}) needs a score of "
                f"{ie['calibration']['unknown_threshold']:.3f}, which keeps {100 * st['recall_at_threshold']:.1f}% of "
                f"right answers (precision there {st['precision_at_threshold']:.2f}). Queries: localized "
                f"{ie['status_shares']['localized']:.2f}, unknown {ie['status_shares']['unknown']:.2f}. The off-the-shelf "
                "descriptor does not separate revisits of an area from look-alike areas of the same building well enough "
                "for confident answers; the calibration says so instead of guessing (training, issue 5, is the fix)."]
    out.append("")
    plots = {name: r["plots"] for name, r in d["datasets"].items() if r.get("plots")}
    if plots:
        out.append("Plots written by `--plots` (recall@N, error CDF, per-stage latency; the query / match pairs, "
                   "`matches.png`, show dataset photos and are not committed: run the suite to see them):")
        for name, files in plots.items():
            out.append(f"- {name}: " + ", ".join(f"[{Path(f).name}]({f})" for f in files if not f.endswith("matches.png")))
        out.append("")
    if d.get("peers"):
        out += peers_section(d)
    return out


def peers_section(d: dict) -> list[str]:
    out = ["### placekit beside its peers, same splits, same scoring", "",
           "Every method is scored by `placekit.tools.evaluation.recall_curve` on the splits above. Latency is per query, "
           "one at a time, on 2 threads, from the image file: placekit's is `localize(path)` (decoding, extraction, "
           "search, decision); a peer's is decoding, extraction and exhaustive search. Bytes per place: placekit's whole map file (index, codes, "
           "re-rank vectors, places table, manifest) divided by places; a peer's is its descriptor (sparse: "
           "non-zeros x 8 bytes). Peers' vocabularies are learned on `shared/data/pool`, never on an evaluation set "
           "(`benchmarks/peers.py`).", "",
           "| dataset | method | recall@1 | @5 | @10 | latency p50 ms | bytes per place |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for name, rows in d["peers"].items():
        for r in rows:
            label = r["method"] if r["peer"] else f"**{r['method']}**"
            out.append(f"| {name} | {label} | {r['recall_at_1']:.3f} | {r['recall_at_5']:.3f} | {r['recall_at_10']:.3f} "
                       f"| {r['latency_ms_p50']:.1f} | {r['bytes_per_place']:,.0f} |")
    return out + [""]


def scale_section(d: dict) -> list[str]:
    lat = d["localize_ms_p50"]
    return ["## Scale run: 100k real places", "", provenance(d), "",
            f"{d['places']:,} places from {d['photos']:,} real photos of `shared/data` and their augmented crops "
            f"(`benchmarks/scale_run.py` docstring), described by the shipped GeM "
            f"({d['extract_ms_per_image']:.1f} ms per image, {d['extract_s'] / 60:.0f} min in all), built with "
            f"`MapBuilder` (recipe `{d['recipe']}`, {d['build_s']:.0f} s); {d['queries']:,} held-out query crops.", "",
            "| measure | value |", "|---|---:|",
            f"| map file | {d['file_bytes'] / 1e6:.1f} MB ({d['bytes_per_place']:.0f} bytes per place) |",
            f"| index bytes per place in RAM | {d['ram_bytes_per_place']:.1f} |",
            f"| open, sha256 verified / unverified (median, fresh process) | {d['open_ms_verified']:.1f} / "
            f"{d['open_ms_unverified']:.1f} ms |",
            f"| index search p50 / p99 | {d['search_ms_p50']:.3f} / {d['search_ms_p99']:.3f} ms |",
            f"| recall@1 / @10 of the index vs exact search (same projected vectors) | {d['recall_at_1_vs_exact']:.3f} / "
            f"{d['recall_at_10_vs_exact']:.3f} |",
            f"| query's own photo at top-1: index / exact 1280-D float search | {d['source_photo_at_1_index']:.3f} / "
            f"{d['source_photo_at_1_exact_raw']:.3f} |",
            f"| `localize` p50 on this map: extract / search / decide / total | {lat['extract']:.1f} / {lat['search']:.2f} "
            f"/ {lat['decide']:.2f} / {lat['total']:.1f} ms |", ""]


def city_scale_section(runs: list[dict]) -> list[str]:
    """bench_scale_10m.py at each measured size: build, then search under the memory limit."""
    def per_list(d: dict) -> int:  # k-means training rows per inverted list
        words = d["command"].split()
        return int(words[words.index("--train-per-list") + 1]) if "--train-per-list" in words else 32

    def nlist(d: dict) -> int:
        return int(d["build"]["recipe"].split("IVF")[1].split("_")[0])

    def quantizer(d: dict) -> str:
        kind = "two-level k-means" if nlist(d) > 16384 else "k-means"
        return f"{nlist(d):,} lists, {kind} on {per_list(d)} rows per list"

    runs = sorted(runs, key=lambda d: (d["build"]["places"], nlist(d), per_list(d), d["build"]["real"]))
    out = ["## City scale: Ray build, search within 1 GiB", ""]
    out += [provenance(d) for d in runs]
    reals = " or ".join(f"{n:,}" for n in sorted({d["build"]["real"] for d in runs}, reverse=True))
    out += ["", f"Clustered 256-D descriptors plus {reals} real GeM descriptors (PCA to 256-D; per run in its note "
            "and command) mixed in "
            "(`benchmarks/bench_scale_10m.py` docstring). Built through `RayExecutor` on a local instance "
            "(2 workers): training in one task, encoding in tasks of 65,536. Each search setting in a fresh "
            "process moved into a cgroup with a 1 GiB memory limit after the page cache was dropped; "
            "single thread, one query at a time. Recall@1 against exact search over all places; "
            "`storage KB/query`: bytes the process read from storage per query (`/proc/self/io`); "
            "`group peak`: the cgroup's peak memory, page cache included; `RSS peak`: the process's. "
            "The 8,192-list 10M runs are from the code before the two-level coarse quantizer and the "
            "re-rank read-ahead (commit 16718ef; `--train-per-list` has since become "
            "`placekit.index.build.training_rows`).", ""]
    out += [d["note"] + "\n" for d in runs if d.get("note")]
    out += ["| places | recipe | coarse quantizer | build s (train / encode / assemble / write) | map file | open s | "
            "`map info` s |", "|---:|---|---|---|---:|---:|---:|"]
    for d in runs:
        b = d["build"]
        info = d.get("map_info", {})
        opened = min(r.get("open_s", 0) for r in d["search"] if "p50_ms" in r)
        info_text = (f"{info['map_info_cold_s']:.2f} cold / {info['map_info_warm_s']:.2f} warm"
                     if "map_info_cold_s" in info else "-")
        out.append(f"| {b['places']:,} ({b['real'] // 1000}k real) | `{b['recipe']}` | {quantizer(d)} | {b['build_s']:.0f} ({b['train_s']:.0f} / "
                   f"{b['encode_s']:.0f} / "
                   f"{b['assemble_s']:.0f} / {b['write_s']:.0f}) | {b['file_bytes'] / 1e9:.2f} GB | {opened:.2f} | "
                   f"{info_text} |")
    out += ["", "| places (lists) | method | nprobe / rerank | recall@1 synthetic | recall@1 real | p50 ms | p99 ms | "
            "storage KB/query | group peak MB | RSS peak MB | RAM bytes/place |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for d in runs:
        n = (f"{d['build']['places']:,} ({nlist(d):,}{', ' + str(per_list(d)) + ' rows/list' if per_list(d) != 32 else ''}"
             f"; {d['build']['real'] // 1000}k real)")
        for r in d["search"]:
            if "p50_ms" not in r:
                out.append(f"| {n} | placekit | {r.get('nprobe', 16)} / {r['rerank']} | failed: "
                           f"{r.get('failed', '')[-120:]!r} |")
                continue
            real = "-" if r["recall_at_1_real"] is None else f"{r['recall_at_1_real']:.3f}"
            out.append(f"| {n} | placekit (fp16 re-rank read from the map file) | {r.get('nprobe', 16)} / {r['rerank']} | "
                       f"{r['recall_at_1_synthetic']:.3f} | {real} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                       f"{r['storage_read_bytes_per_query'] / 1e3:.1f} | {r['cgroup_peak_bytes'] / 2**20:.0f} | "
                       f"{r['process_peak_rss_bytes'] / 2**20:.0f} | - |")
        for f_ in d.get("faiss", []):
            real = "-" if f_["recall_at_1_real"] is None else f"{f_['recall_at_1_real']:.3f}"
            out.append(f"| {n} | {f_['method']} | 16 / 0 | {f_['recall_at_1_synthetic']:.3f} | {real} | "
                       f"{f_['p50_ms']:.2f} | {f_['p99_ms']:.2f} | - | - | - | {f_['bytes_per_place']:.1f} |")
    return out + [""]


def coarse_quantizer_section(runs: list[dict]) -> list[str]:
    """bench_coarse_quantizer.py: coverage of the true neighbour's list against codes scanned."""
    out = ["## Coarse quantizers at 3M and 10M places (no map built)", ""]
    out += [provenance(d) for d in runs]
    out += ["", "Share of queries whose exact nearest neighbour's list is among the `nprobe` probed "
            "(`benchmarks/bench_coarse_quantizer.py` docstring): with the database assigned as the index "
            "assigns it, probed exactly or through the tree (two-level quantizers), and the codes a query "
            "scans (mean). Synthetic queries of the mixture (10M: and the real set).", "",
            "| places | quantizer | train s | nprobe | coverage synthetic: exact probing / tree probing | "
            "coverage real: exact / tree | codes scanned | probe ms: exact / tree (NumPy, 2 threads) |",
            "|---:|---|---:|---:|---|---|---:|---|"]
    for d in runs:
        for r in d["results"]:
            for p in r["probing"]:
                if p["nprobe"] not in (16, 32, 64, 128):
                    continue
                t = r["probe_time"].get(str(p["nprobe"]), {})
                tree_syn = p.get("coverage_synthetic_tree_probing")
                tree_real = p.get("coverage_real_tree_probing")
                real = "-" if p["coverage_real"] is None else (
                    f"{p['coverage_real']:.3f} / {'-' if tree_real is None else f'{tree_real:.3f}'}")
                times = (f"{t['exact_ms']:.2f} / {t['tree_ms']:.2f}" if "tree_ms" in t
                         else (f"{t['exact_ms']:.2f} / -" if t else "-"))
                out.append(f"| {d['places']:,} | {r['quantizer']} | {r['train_s']:.0f} | {p['nprobe']} | "
                           f"{p['coverage_synthetic']:.3f} / {'-' if tree_syn is None else f'{tree_syn:.3f}'} | "
                           f"{real} | {p['codes_scanned_mean']:,.0f} | {times} |")
    return out + [""]


def _same_map(c: dict) -> str:
    if c["identical"]:
        return "identical"
    if c["float_only"]:
        return f"floats within {c['max_float_diff']:.1e} ({', '.join(c['differing'])})"
    return "DIFFERENT: " + ", ".join(c["differing"])


def distributed_build_section(d: dict) -> list[str]:
    out = ["## Map build throughput: single process vs Ray", "", provenance(d), "",
           "Real photos of `shared/data`, default `BuildOptions` (GeM, index `auto`), the same image list for "
           "every configuration (`benchmarks/bench_distributed_build.py` docstring). Ray start-up is not in "
           "the rates.", "",
           "| configuration | images | extraction img/s | x single process (2 threads) | whole build img/s | "
           "Ray start-up s | map vs single process, threads=1 |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in d["rows"]:
        out.append(f"| {r['config']} | {r['images']} | {r['extract_images_per_s']:.1f} | "
                   f"{r['extract_speedup_vs_single_threads_2']:.2f} | {r['build_images_per_s']:.1f} | "
                   f"{r['startup_s']:.1f} | {_same_map(r['vs_single_process_threads_1'])} |")
    return out + [""]


def tracking_section(d: dict) -> list[str]:
    out = [f"## Tracking on KITTI: single frames vs `Tracker` (`{d.get('model', 'gem-imagenet-fp32')}`)", "",
           provenance(d), "",
           f"{d['queries']} queries (odd frames of seq1 then seq2, 0.2 s apart; the switch at query "
           f"{d['kidnap_at_query']} is a kidnap), map = even frames of both (`benchmarks/bench_tracking.py` docstring "
           f"gives the degradation). Recall: share of queries answered `localized` within {d['threshold_m']:.0f} m. "
           "Default `TrackerOptions`, not tuned on KITTI.", "",
           "| condition | mode | recall (localized within 5 m) | answer within 5 m | localized share | precision of localized | median error m | frames to recover after the kidnap | latency p50 ms |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    fmt = lambda v, p=3: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
    for key, r in d["results"].items():
        cond, mode = key.split("/")
        out.append(f"| {cond} | {mode} | {r['recall']:.2f} | {fmt(r.get('answer_within_threshold'), 2)} | {r['localized_share']:.2f} | {fmt(r['localized_precision'], 2)} "
                   f"| {fmt(r['median_error_m'], 2)} | {r['frames_to_recover_after_kidnap'] or '-'} | {r['latency_ms_p50']:.1f} |")
    return out + [""]


def prior_growth_section(d: dict) -> list[str]:
    out = ["## Position priors and map growth", "", provenance(d), "",
           f"The {d['places']:,} real descriptors of the scale run laid out on a {d['grid_m']:.0f} m grid; "
           f"{d['queries']:,} held-out query crops. A prior is centred up to half its radius away from the truth. Here a "
           "prior buys recall (far-away look-alikes drop out), not speed: the unrestricted IVF search already reads "
           "only 16 of 1,024 lists. Small allowed sets are scored directly, large ones by probing proportionally more "
           "lists, loose priors by a full search then a filter (`PlaceIndex.search_among`, `Localizer._search`).", "",
           "| prior radius | places searched (median) | search p50 ms | p99 ms | own photo at top-1 |",
           "|---|---:|---:|---:|---:|"]
    for r in d["prior"]:
        radius = "none" if r["radius_m"] is None else f"{r['radius_m']:.0f} m"
        out.append(f"| {radius} | {r['places_searched_median']:,.0f} | {r['search_ms_p50']:.3f} | {r['search_ms_p99']:.3f} "
                   f"| {r['own_photo_at_1']:.3f} |")
    out += ["", "Growth without retraining (`PlaceIndex.add`, which `Localizer.add_place` uses):", "",
            "| places | index | recall@1 vs exact | own photo at top-1 |", "|---:|---|---:|---:|"]
    for r in d["growth"]:
        out.append(f"| {r['places']:,} | {r['index']} | {r['recall_at_1_vs_exact']:.3f} | {r['own_photo_at_1']:.3f} |")
    return out + [""]


def soak_section(d: dict) -> list[str]:
    w = d["windows"]
    return ["## Soak: long-running localize", "", provenance(d), "",
            f"{d['calls']:,} `localize` calls from 2 threads in {d['seconds'] / 60:.1f} min, with a place added, removed "
            "and compacted every 2 s (`benchmarks/soak.py`).", "",
            f"- resident memory growth after warm-up: **{d['rss_growth_after_warmup_pct']:.3f}%** "
            f"(anonymous memory {d['anon_growth_after_warmup_bytes'] / 1e6:+.2f} MB); VmRSS {w[0]['VmRSS'] / 1e6:.1f} MB at "
            f"{w[0]['calls']:,} calls, {w[-1]['VmRSS'] / 1e6:.1f} MB at {w[-1]['calls']:,}",
            f"- p99 latency of the first / last window after warm-up: {d['p99_ms_first_last'][0]:.1f} / "
            f"{d['p99_ms_first_last'][1]:.1f} ms (p50 {w[0]['p50_ms']:.1f} / {w[-1]['p50_ms']:.1f} ms)",
            f"- open file descriptors at start / end: {d['open_fds_start_end'][0]} / {d['open_fds_start_end'][1]}", ""]


def install_section(d: dict) -> list[str]:
    largest = ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in d["largest"].items() if k not in ("pip", "setuptools"))
    pkgs = ", ".join(f"{k} {v}" for k, v in sorted(d["packages"].items()) if k not in ("pip", "setuptools"))
    return ["## Runtime-only install", "", provenance(d), "",
            f"`pip install placekit` (no extras) into a fresh venv: **{d['installed_bytes'] / 1e6:.0f} MB** installed, "
            f"torch installed: **{'yes' if d['torch_installed'] else 'no'}**; `import placekit` takes "
            f"{d['import_ms_median']:.0f} ms (median of 5 fresh processes).", "",
            f"Packages: {pkgs}.", "", f"Largest: {largest}.", ""]


def pose_section(d: dict) -> list[str]:
    out = [f"## Local features, verification and 6-DoF pose ({d.get('max_keypoints', 1024)} keypoints per image)", "",
           provenance(d), "", *([f"**{d['note']}**", ""] if d.get("note") else []),
           "Strecha (4 scenes) and KITTI (2 drives): one map per scene / drive from the even-numbered images with "
           "their cameras, queries = the odd-numbered ones (`benchmarks/bench_pose.py` docstring). Recall@1 within "
           f"{d['threshold_m']:.0f} m. Pose errors over all queries (no pose = a miss). Out-of-map: 17 photos of "
           "other places localized against every map; precision of `localized` over in-map and out-of-map queries. "
           "Latency per query on 2 threads, from the image file; for VLAD the local features are part of `extract`. "
           "HardNet was trained on fountain-P11 and the Herz-Jesus scenes: the entry-P10 rows are the held-out scene.",
           "", "| data / configuration | recall@1 before -> after verification | with a pose | median position "
           "error m | median rotation error deg | within 0.25 m, 2 deg | 0.5 m, 5 deg | 5 m, 10 deg | out-of-map "
           "localized | precision of localized | extract / local features / verify / pose p50 ms | total p50 ms | bytes per place |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    fmt = lambda v, p=2: "-" if v is None or v == float("inf") else f"{v:.{p}f}"  # noqa: E731
    for key, r in d["results"].items():
        lat = r["latency_ms_p50"]
        stages = " / ".join(fmt(lat.get(k), 1) for k in ("extract", "local_features", "verify", "pose"))
        w = list(r["within"].values())
        out.append(f"| {key} | {r['recall_at_1_before_verification']:.3f} -> {r['recall_at_1_after_verification']:.3f} "
                   f"| {r['pose_share']:.2f} | {fmt(r['median_position_error_m'], 3)} | {fmt(r['median_rotation_error_deg'])} "
                   f"| {w[0]:.2f} | {w[1]:.2f} | {w[2]:.2f} | {r['out_of_map_localized_share']:.2f} "
                   f"| {fmt(r['localized_precision_with_out_of_map'], 3)} | {stages} | {fmt(lat.get('total'), 1)} "
                   f"| {r['map_bytes_per_place']:,.0f} |")
    return out + [""]


def trained_gem_section(d: dict) -> list[str]:
    out = ["## Trained GeM vs ImageNet GeM (through the runtime)", "", provenance(d), "",
           "`placekit eval` code path (map, PQ index, one query at a time) for each model, and the 1280-D float "
           "ImageNet GeM peer, on the same splits. **Held out** = not seen by `placekit-train gem`; the last two "
           "sets contain training images and are shown only for continuity with the real-data suite. `-dusk`: the "
           "same split with every query at dusk through a dirty lens (`placekit_export.retrieval_eval.dusk_lens`: "
           "a quarter of the resolution, blur, 0.4x light, noise, a grey occluder), the map built from clean "
           "images.", "",
           "| dataset | held out | queries | method | recall@1 | recall@5 | bytes / place |", "|---|---|---:|---|---:|---:|---:|"]
    for name, t in d["datasets"].items():
        for r in t["rows"]:
            size = r.get("map_bytes_per_place", r.get("bytes_per_place"))
            out.append(f"| {name} | {'yes' if t['held_out'] else '**no**'} | {t['queries']} | {r['method']} "
                       f"| {r['recall_at_1']:.3f} | {r['recall_at_5']:.3f} | {size:,.0f} |")
    if d.get("demo"):
        out += ["", "`placekit demo` per model (rendered street; 20 held-out views, 8 views of another street; 12 views of a "
                "third street as negatives):", "",
                "| model | held-out views localized | median error | foreign views answered unknown |",
                "|---|---:|---:|---:|"]
        for label, r in d["demo"].items():
            out.append(f"| {label} | {r['localized_share']:.2f} | {r['median_error_m']:.2f} m "
                       f"| {r['foreign_unknown_share']:.2f} |")
    return out + [""]


def training_log_section() -> list[str]:
    out = []
    gem = HERE.parent / "models" / "gem" / "training" / "gem.log.json"
    if gem.is_file():
        log = json.loads(gem.read_text())
        out += ["## GeM training log (held-out retrieval, PyTorch at 320 px)", "",
                f"From `models/gem/training/gem.log.json` (`{log['config']}`); training set: {log['data']}. "
                "Recall@1 / mAP per held-out set after each epoch (epoch 0 = ImageNet initialisation); the shipped "
                "model is the last epoch, not chosen by these figures.", ""]
        sets = list(log["heldout_before"])
        out += ["| epoch | loss | p | " + " | ".join(f"{s} r@1 / mAP" for s in sets) + " |",
                "|---:|---:|---:|" + "---:|" * len(sets)]
        rows = [{"epoch": 0, "loss": float("nan"), "p": 3.0, "heldout": log["heldout_before"]}] + log["epochs"]
        for e in rows:
            out.append(f"| {e['epoch']} | {e['loss']:.4f} | {e['p']:.2f} | " + " | ".join(
                f"{e['heldout'][s]['recall_at_1']:.3f} / {e['heldout'][s]['mAP']:.3f}" for s in sets) + " |")
        out += ["", "Whitening of the trained network's descriptors (fit on training pairs / images, scored on the "
                "held-out sets):", "", "| held-out set | variant | recall@1 | mAP |", "|---|---|---:|---:|"]
        for s, variants in log.get("whitening_comparison", {}).items():
            for v, m in variants.items():
                out.append(f"| {s} | {v} | {m['recall_at_1']:.3f} | {m['mAP']:.3f} |")
        out.append("")
    return out


def hpatches_section(d: dict, title: str = "## Patch descriptors on HPatches (held out)", note: str = "") -> list[str]:
    out = [title, "", provenance(d), "",
           "Same SIFT keypoints of image 1 mapped by the ground-truth homography into images 2-6; metrics per "
           "image pair, averaged per sequence, then over the two sequences (`placekit_export.patch_metrics`). "
           "Higher mAP is better, lower FPR95 is better." + note, "",
           "| method | matching mAP | verification mAP | FPR95 | " + " | ".join(
               f"{s} matching mAP" for s in next(iter(d["methods"].values()))["sequences"]) + " |",
           "|---|---:|---:|---:|" + "---:|" * len(next(iter(d["methods"].values()))["sequences"])]
    for name, r in d["methods"].items():
        m = r["mean"]
        out.append(f"| {name} | {m['matching_mAP']:.3f} | {m['verification_mAP']:.3f} | {m['fpr95']:.3f} | " + " | ".join(
            f"{v['matching_mAP']:.3f}" for v in r["sequences"].values()) + " |")
    return out + [""]


def rejection_section(d: dict) -> list[str]:
    out = ["## Out-of-map rejection per global model (held-out data)", "", provenance(d), "",
           "One map per held-out scene / drive (even images), in-map queries = its odd images (correct within "
           f"{d['threshold_m']:.0f} m); out-of-map queries = the other three scenes' photos + {d['indoor_foreign_frames']} "
           "IE Tower highrise frames (`benchmarks/bench_rejection.py` docstring). Global descriptor only, each map "
           f"calibrated at build time on its own images, and again with {d.get('negatives', 0)} negatives "
           "(`MapBuilder.add_negative`: pool photos and IE Tower frames of other floors, none of them a query). Columns: in-map localized and correct / localized but wrong; out-of-map "
           "answered `localized` (lower is better); precision of `localized` over both; the map's unknown threshold.", "",
           "| model | map | in-map correct | in-map wrong | out-of-map localized | precision | unknown below |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for model, maps in d["results"].items():
        for name, r in maps.items():
            prec = "-" if r["precision_of_localized"] is None else f"{r['precision_of_localized']:.3f}"
            out.append(f"| {model} | {name} | {r['in_map_localized_correct']:.3f} | {r['in_map_localized_wrong']:.3f} "
                       f"| {r['out_of_map_localized']:.3f} ({r['out_of_map_queries']}) | {prec} | "
                       f"{r['unknown_threshold']:.3f} |")
    return out + [""]


def whitening_int8_section(d: dict) -> list[str]:
    sets = list(d["rows"][0]["held_out"])
    out = ["## Trained GeM: whitening vs int8 fidelity", "", provenance(d), "",
           f"The trained body (no whitening) int8-quantized as `placekit-export` does ({d['calibration']}); its "
           f"descriptors vs PyTorch on {d['parity_images']}, after each whitening applied in float; held-out "
           "retrieval (recall@1 / mAP, PyTorch 320 px) of the same whitening beside it.", "",
           "| whitening | dim | min cosine | mean cosine | top-1 agreement (decisive) | (all) | "
           + " | ".join(sets) + " |", "|---|---:|---:|---:|---:|---:|" + "---:|" * len(sets)]
    for r in d["rows"]:
        out.append(f"| {r['whitening']} | {r['dim']} | {r['min_cosine']:.4f} | {r['mean_cosine']:.4f} | "
                   f"{r['top1_agreement']:.3f} | {r['top1_agreement_all']:.3f} | " + " | ".join(
                       f"{r['held_out'][k]['recall_at_1']:.3f} / {r['held_out'][k]['mAP']:.3f}" for k in sets) + " |")
    return out + [""]


def gem_checkpoints_section(d: dict) -> list[str]:
    labels = list(d["results"])
    sets = list(d["results"][labels[0]])
    out = ["## GeM checkpoints on every held-out set (PyTorch, 320 px)", "", provenance(d), "",
           "Whole networks as exported (trained ones with their 256-D learned whitening) on "
           "`placekit_export.retrieval_eval.heldout_sets`, none of whose images any GeM was trained on. "
           "Checkpoints: " + "; ".join(f"{k} = `{v}`" for k, v in d["checkpoints"].items()) + " (a path outside the "
           "repo is an earlier `models/gem/training/gem.pt`; `benchmarks/README.md` names its commit). Recall@1 / mAP.", "",
           "| held-out set | queries | " + " | ".join(labels) + " |", "|---|---:|" + "---:|" * len(labels)]
    for s in sets:
        out.append(f"| {s} | {d['results'][labels[0]][s]['queries']} | " + " | ".join(
            f"{d['results'][k][s]['recall_at_1']:.3f} / {d['results'][k][s]['mAP']:.3f}" for k in labels) + " |")
    trained = [k for k in labels[1:] if "vs_imagenet" in d["results"][k][sets[0]]]
    if trained:
        out += ["", "Difference to the ImageNet GeM on the same queries, mean [95% paired bootstrap interval]; "
                "**bold**: a clear gain (the interval's low end above 0), _italic_: a clear loss.", "",
                "| held-out set | " + " | ".join(f"{k}: recall@1 | {k}: mAP" for k in trained) + " |",
                "|---|" + "---:|" * (2 * len(trained))]
        for s in sets:
            cells = [_interval(d["results"][k][s]["vs_imagenet"][m]) for k in trained for m in ("recall_at_1", "mAP")]
            out.append(f"| {s} | " + " | ".join(cells) + " |")
    return out + [""]


def _interval(ci: dict) -> str:
    text = f"{ci['mean']:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}]"
    return f"**{text}**" if ci["low"] > 0 else f"_{text}_" if ci["high"] < 0 else text


def whitening_validation_section(d: dict) -> list[str]:
    sets = list(d["rows"][0]["validation"])
    out = ["## Trained GeM: whitening shrinkage chosen on a validation split", "", provenance(d), "",
           "Learned whitening (adverse-conditions scatter included) of `" + d["checkpoint"] + "` at each shrinkage, "
           "scored on the IE Tower training floors' frames that training skipped (`retrieval_eval.ie_tower_validation`, "
           "not a held-out set), clean and with queries through `dusk_lens`. Rule fixed before the run: the highest "
           f"mean mAP wins. Chosen: **{d['chosen_shrinkage']}**. Recall@1 / mAP.", "",
           "| shrinkage | " + " | ".join(f"{s} ({d['rows'][0]['validation'][s]['queries']} queries)" for s in sets) + " | mean mAP |",
           "|---:|" + "---:|" * (len(sets) + 1)]
    for r in d["rows"]:
        out.append(f"| {r['shrinkage']} | " + " | ".join(
            f"{r['validation'][s]['recall_at_1']:.3f} / {r['validation'][s]['mAP']:.3f}" for s in sets)
            + f" | {r['mean_mAP']:.3f} |")
    return out + [""]


def _agreement(par: dict) -> str:
    if "decisive_items" not in par:
        return f"{par['top1_agreement']:.3f}"
    return (f"{par['top1_agreement']:.3f} on {par['decisive_items']} decisive items, "
            f"{par['top1_agreement_all']:.3f} on all")


def cards_section() -> list[str]:
    out = ["## Shipped models (from their cards)", ""]
    for card in sorted((HERE.parent / "models").glob("*/card.json")):
        c = json.loads(card.read_text())
        for f in c["files"]:
            par = f["parity"]
            out.append(f"- `{f['file']}`: {f['bytes']:,} bytes; parity vs PyTorch on {par.get('n_items', par.get('n_images'))} "
                       f"held-out items: min cosine {par['min_cosine']:.5f}, mean {par['mean_cosine']:.5f}, top-1 "
                       f"agreement {_agreement(par)} ({par['images']}). Command: `{f['command']}`.")
    return out + [""]


def main() -> None:
    lines = ["# Benchmark results", "",
             "Generated by `python benchmarks/make_results.py` from `benchmarks/results/*.json`; each section "
             "names the command that measured it. Machine: the project's 2-core x86-64 VM, no GPU.", ""]
    generalization = load("generalization.json")
    if generalization:
        lines += generalization_section(generalization, load("generalization_before.json"))
    else:
        lines += ["_generalization.json: not measured yet._", ""]
    for name, render in (("index.json", index_section), ("map.json", map_section),
                         ("localize.json", localize_section), ("localize_gem_imagenet_int8.json", localize_section),
                         ("fuzz.json", fuzz_section), ("fuzz_inputs.json", fuzz_inputs_section),
                         ("soak_faults.json", soak_faults_section),
                         ("input_size_validation.json", input_size_section),
                         ("models.json", models_section), ("int8_parity.json", int8_section),
                         ("int8_parity_trained.json", int8_section), ("whitening_int8.json", whitening_int8_section),
                         ("whitening_validation.json", whitening_validation_section),
                         ("real_data.json", real_data_section), ("pose.json", pose_section),
                         ("pose_512.json", pose_section), ("pose_detectors.json", pose_section),
                         ("pose_xfeat.json", pose_section), ("pose_rootsift_512.json", pose_section),
                         ("pose_disk.json", pose_section), ("pose_480.json", pose_section),
                         ("pose_rootsift_512_early_exit.json", pose_section),
                         ("pose_default_early_exit.json", pose_section), ("pose_aliked.json", pose_section),
                         ("pose_c16_512.json", pose_section), ("pose_c16_1024.json", pose_section),
                         ("pose_c16_480.json", pose_section), ("pose_c16_orb.json", pose_section),
                         ("pose_c16_orb_512.json", pose_section), ("pose_default.json", pose_section),
                         ("localize_default.json", localize_verified_section),
                         ("localize_verified.json", localize_verified_section),
                         ("localize_c16.json", localize_verified_section),
                         ("localize_c8.json", localize_verified_section), ("wxbs.json", wxbs_section),
                         ("scale.json", scale_section),
                         ("distributed_build.json", distributed_build_section),
                         ("tracking.json", tracking_section),
                         ("tracking_gem_imagenet_int8.json", tracking_section), ("tracking_gem.json", tracking_section),
                         ("tracking_gem_int8.json", tracking_section), ("prior_growth.json", prior_growth_section),
                         ("soak.json", soak_section), ("install.json", install_section),
                         ("trained_gem.json", trained_gem_section), ("gem_checkpoints.json", gem_checkpoints_section),
                         ("rejection.json", rejection_section),
                         ("hpatches.json", hpatches_section),
                         ("hpatches_peers.json", lambda d: hpatches_section(
                             d, "## Descriptors on HPatches, with the dense peers XFeat and DISK (held out)",
                             " The dense peers describe the same keypoints by sampling their descriptor map there "
                             "(`benchmarks/bench_hpatches.py` docstring); their own detectors are not used.")),
                         ("hpatches_aliked.json", lambda d: hpatches_section(
                             d, "## Descriptors on HPatches: the ALIKED peer (held out)",
                             " ALIKED-N16 (`placekit_export.aliked`, PyTorch, the published BSD-3 weights) describes "
                             "the same keypoints with its deformable descriptor head; its own detector is not used.")),
                         ("hpatches_c16.json", lambda d: hpatches_section(
                             d, "## Descriptors on HPatches: HardNet-C16 against HardNet (held out)",
                             " HardNet-C16 (`placekit-train hardnet --channels 16 --teacher ...`) has a quarter of "
                             "HardNet's multiply-adds per patch; both on the benchmark's SIFT keypoints.")),
                         ("wxbs_aliked.json", wxbs_section)):
        d = load(name)
        lines += render(d) if d else [f"_{name}: not measured yet._", ""]
    city = [d for d in (load("scale_1m.json"), load("scale_10m.json"), load("scale_10m_real30k.json"),
                        load("scale_10m_ivf8192.json"), load("scale_10m_train64.json")) if d]
    lines += city_scale_section(city) if city else ["_scale_10m.json: not measured yet._", ""]
    coarse = [d for d in (load("coarse_quantizer_3m.json"), load("coarse_quantizer_10m.json")) if d]
    lines += coarse_quantizer_section(coarse) if coarse else []
    lines += training_log_section()
    lines += cards_section()
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
