//! Work that takes several steps on other services and hosts (a server's build: claim in
//! placement → ports → instance on its host → active), run as a persisted workflow of
//! undoable steps.
//!
//! - The workflow is written in the same database write as what it works on (the server
//!   record), so a crash cannot leave one without the other.
//! - Each step is recorded `started` before it runs and `done` after, so a restarted
//!   controller knows where every workflow stood; [`Compute::resume_workflows`] carries them
//!   on from the first step not done. Every step's `run` must therefore be safe to run again
//!   after it was cut short (the build's steps adopt what an earlier try left: an existing
//!   claim, the same spec generation, and they clear ports an earlier try made).
//! - A step that fails (or finds its subject gone) turns the workflow to undoing: the steps
//!   started or done are undone in reverse order, the failed one first, each undo recorded,
//!   and then [`Steps::failed`] says the outcome (the build's: ERROR with its fault). Undos are
//!   idempotent for the same reason.
//! - A finished workflow is deleted; the table holds only work under way.
//!
//! For tests of crashes, `HANEUL_FAULT_PAUSE_AT=<kind>.<step>.<before|after>` makes the
//! workflow stop at that point (logging `fault point reached`) so that the test can kill the
//! process there with SIGKILL; nothing else reads it.

use std::sync::Arc;

use haneul_core::service::BoxFuture;

use crate::service::Compute;

pub use crate::model::{Step, StepState, Workflow};

/// Where a workflow goes next.
fn next(wf: &Workflow) -> Next {
    match &wf.failure {
        None => match wf.steps.iter().position(|s| matches!(s.state, StepState::Pending | StepState::Started)) {
            Some(i) => Next::Run(i),
            None => Next::Finished,
        },
        Some(why) => match wf.steps.iter().rposition(|s| matches!(s.state, StepState::Started | StepState::Done)) {
            Some(i) => Next::Undo(i),
            None => Next::Failed(why.clone()),
        },
    }
}

enum Next {
    Run(usize),
    Undo(usize),
    Finished,
    Failed(String),
}

/// Why a step did not complete.
#[derive(Debug)]
pub enum StepError {
    /// The step cannot be done: the workflow is undone, and this is the reason given.
    Failed(String),
    /// The subject was deleted meanwhile: the workflow is undone quietly.
    Gone,
}

/// The steps of one kind of workflow.
pub trait Steps: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    fn names(&self) -> &'static [&'static str];
    /// Does step `step` (again, if an earlier try was cut short).
    fn run<'a>(&'a self, c: &'a Arc<Compute>, wf: &'a Workflow, step: &'a str) -> BoxFuture<'a, Result<(), StepError>>;
    /// Undoes step `step`, whatever part of it was done.
    fn undo<'a>(&'a self, c: &'a Arc<Compute>, wf: &'a Workflow, step: &'a str) -> BoxFuture<'a, ()>;
    /// After every step was undone: records the outcome (`why` is empty when the subject is
    /// gone).
    fn failed<'a>(&'a self, c: &'a Arc<Compute>, wf: &'a Workflow, why: &'a str) -> BoxFuture<'a, ()>;
}

impl Compute {
    /// Drives the workflow `id` to its end (or to a crash, after which
    /// [`Compute::resume_workflows`] goes on).
    pub async fn drive(self: &Arc<Self>, steps: &dyn Steps, id: &str) {
        loop {
            let Some(wf) = self.model().workflows.get(id).cloned() else { return };
            match next(&wf) {
                Next::Run(i) => {
                    let name = wf.steps[i].name.clone();
                    if !self.mark(id, i, StepState::Started, None).await {
                        return;
                    }
                    fault_point(&wf.kind, &name, "before").await;
                    let outcome = steps.run(self, &wf, &name).await;
                    fault_point(&wf.kind, &name, "after").await;
                    let ok = match outcome {
                        Ok(()) => self.mark(id, i, StepState::Done, None).await,
                        Err(StepError::Failed(why)) => {
                            tracing::warn!(workflow = %id, step = %name, %why, "step failed; undoing");
                            self.mark(id, i, StepState::Started, Some(why)).await
                        }
                        Err(StepError::Gone) => {
                            tracing::info!(workflow = %id, step = %name, "subject gone; undoing");
                            self.mark(id, i, StepState::Started, Some(String::new())).await
                        }
                    };
                    if !ok {
                        return;
                    }
                }
                Next::Undo(i) => {
                    let name = wf.steps[i].name.clone();
                    steps.undo(self, &wf, &name).await;
                    fault_point(&wf.kind, &name, "undone").await;
                    if !self.mark(id, i, StepState::Undone, None).await {
                        return;
                    }
                }
                Next::Finished => {
                    self.end(id).await;
                    return;
                }
                Next::Failed(why) => {
                    steps.failed(self, &wf, &why).await;
                    self.end(id).await;
                    return;
                }
            }
        }
    }

    /// Records step `i`'s new state (and, when given, the failure that turns the workflow to
    /// undoing). False when it could not be recorded: the workflow stops here and is picked
    /// up at the next start, as after a crash.
    async fn mark(&self, id: &str, i: usize, state: StepState, failure: Option<String>) -> bool {
        let r = self
            .write(|t| {
                if let Some(wf) = t.m.workflows.get(id) {
                    let mut wf = (**wf).clone();
                    if let Some(s) = wf.steps.get_mut(i) {
                        s.state = state;
                    }
                    if failure.is_some() {
                        wf.failure = failure;
                    }
                    t.put(wf)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = &r {
            tracing::error!(workflow = %id, error = %haneul_core::service::chain(e), "could not record a workflow step");
        }
        r.is_ok()
    }

    async fn end(&self, id: &str) {
        let r = self
            .write(|t| {
                t.delete::<Workflow>(id);
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::error!(workflow = %id, error = %haneul_core::service::chain(&e), "could not remove a finished workflow");
        }
    }

    /// After a restart: every workflow under way goes on from where it stood.
    pub fn resume_workflows(self: &Arc<Self>, kinds: Vec<Arc<dyn Steps>>) {
        for wf in self.model().workflows.values() {
            let Some(steps) = kinds.iter().find(|k| k.kind() == wf.kind).cloned() else {
                tracing::error!(workflow = %wf.id, kind = %wf.kind, "a workflow of an unknown kind is left as it is");
                continue;
            };
            let at = wf.steps.iter().find(|s| s.state != StepState::Done).map(|s| s.name.clone()).unwrap_or_default();
            tracing::info!(workflow = %wf.id, step = %at, undoing = wf.failure.is_some(), "resuming a workflow cut short by a restart");
            let (c, id) = (self.clone(), wf.id.clone());
            tokio::spawn(async move { c.drive(steps.as_ref(), &id).await });
        }
    }
}

/// See the module's description.
async fn fault_point(kind: &str, step: &str, when: &str) {
    static WANTED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let Some(wanted) = WANTED.get_or_init(|| std::env::var("HANEUL_FAULT_PAUSE_AT").ok()) else { return };
    if *wanted == format!("{kind}.{step}.{when}") {
        tracing::warn!(point = %wanted, pid = std::process::id(), "fault point reached");
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(states: &[StepState], failure: Option<&str>) -> Workflow {
        let mut w = Workflow::new("build", "s", "r", &["a", "b", "c"], serde_json::Value::Null);
        for (s, st) in w.steps.iter_mut().zip(states) {
            s.state = *st;
        }
        w.failure = failure.map(str::to_string);
        w
    }

    #[test]
    fn forward_goes_from_the_first_step_not_done_and_undo_from_the_last_begun() {
        use StepState::*;
        assert!(matches!(next(&wf(&[Pending, Pending, Pending], None)), Next::Run(0)));
        assert!(matches!(next(&wf(&[Done, Started, Pending], None)), Next::Run(1)), "a cut-short step runs again");
        assert!(matches!(next(&wf(&[Done, Done, Done], None)), Next::Finished));
        assert!(matches!(next(&wf(&[Done, Started, Pending], Some("x"))), Next::Undo(1)), "the failed step first");
        assert!(matches!(next(&wf(&[Done, Undone, Pending], Some("x"))), Next::Undo(0)));
        assert!(matches!(next(&wf(&[Undone, Undone, Pending], Some("x"))), Next::Failed(w) if w == "x"));
    }
}
