//! The step graph: cycles (refused at load), the steps downstream of one (`--from`), and the DAG
//! as text for `backbeat pipeline show`.

use std::fmt::Write as _;

use super::spec::{Pipeline, StepKind};

/// Indexes of the steps `i` depends on.
pub fn parents(p: &Pipeline, i: usize) -> Vec<usize> {
    p.steps[i].depends_on.iter().filter_map(|d| p.steps.iter().position(|s| &s.name == d)).collect()
}

/// A cycle of step indexes, if the dependencies have one.
pub fn find_cycle(p: &Pipeline) -> Option<Vec<usize>> {
    // 0 unvisited, 1 on the current path, 2 done.
    fn visit(p: &Pipeline, i: usize, state: &mut [u8], path: &mut Vec<usize>) -> Option<Vec<usize>> {
        state[i] = 1;
        path.push(i);
        for d in parents(p, i) {
            if state[d] == 1 {
                let from = path.iter().position(|&x| x == d).expect("on path");
                return Some(path[from..].to_vec());
            }
            if state[d] == 0 {
                if let Some(c) = visit(p, d, state, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        state[i] = 2;
        None
    }
    let mut state = vec![0u8; p.steps.len()];
    (0..p.steps.len()).find_map(|i| if state[i] == 0 { visit(p, i, &mut state, &mut Vec::new()) } else { None })
}

/// The steps in an order where every step follows its dependencies (file order among equals).
pub fn topological(p: &Pipeline) -> Vec<usize> {
    let mut done = vec![false; p.steps.len()];
    let mut order = Vec::with_capacity(p.steps.len());
    while order.len() < p.steps.len() {
        let next = (0..p.steps.len()).find(|&i| !done[i] && parents(p, i).iter().all(|&d| done[d]));
        let Some(i) = next else { break }; // a cycle; refused at load
        done[i] = true;
        order.push(i);
    }
    order
}

/// `start` and every step that depends on it, directly or not.
pub fn downstream(p: &Pipeline, start: usize) -> Vec<bool> {
    let mut marked = vec![false; p.steps.len()];
    marked[start] = true;
    for i in topological(p) {
        if parents(p, i).iter().any(|&d| marked[d]) {
            marked[i] = true;
        }
    }
    marked
}

/// The DAG as text: one line per step in run order, with what it runs, its dependencies and its
/// policy.
pub fn render(p: &Pipeline) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "pipeline {} ({}): {}", p.name, p.source, p.description);
    let _ = writeln!(out, "  at most {} steps at once", p.max_parallel);
    if let Some(s) = &p.schedule {
        let _ = writeln!(out, "  schedule: '{}' in {}, catch-up {}", s.cron, s.timezone, s.catchup);
    }
    for v in &p.vars {
        let _ = writeln!(out, "  var {v}");
    }
    // Depth: the longest chain of dependencies above a step, for indentation.
    let mut depth = vec![0usize; p.steps.len()];
    for i in topological(p) {
        depth[i] = parents(p, i).iter().map(|&d| depth[d] + 1).max().unwrap_or(0);
        let step = &p.steps[i];
        let what = match &step.kind {
            StepKind::Job { job, params } => {
                let ps: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                if ps.is_empty() { format!("job {}", job.name) } else { format!("job {} {}", job.name, ps.join(" ")) }
            }
            StepKind::Ingest(i) => format!("ingest {} {} ({})", i.format, i.path, i.mode),
            StepKind::Export(e) => format!("export {} to {}", e.table, e.to),
            StepKind::Datagen(d) => format!("datagen scale {}", d.scale),
        };
        let mut policy = Vec::new();
        if step.retries > 0 {
            policy.push(format!("retries {} (from {:?}, doubling)", step.retries, step.retry_delay));
        }
        if let Some(t) = step.timeout {
            policy.push(format!("timeout {t:?}"));
        }
        if !step.when.env.is_empty() {
            policy.push(format!("when {} set", step.when.env.join(", ")));
        }
        if !step.when.missing.is_empty() {
            policy.push(format!("when any of {} is missing", step.when.missing.join(", ")));
        }
        let deps = if step.depends_on.is_empty() { String::new() } else { format!("  <- {}", step.depends_on.join(", ")) };
        let policy = if policy.is_empty() { String::new() } else { format!("  [{}]", policy.join("; ")) };
        let _ = writeln!(out, "  {}{}: {what}{deps}{policy}", "  ".repeat(depth[i]), step.name);
    }
    out
}
