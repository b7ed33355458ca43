//! News of container exits for a pod worker: one task per running container
//! parks a wait request at the pod's supervisor and wakes the worker when it
//! answers, so that a pod whose containers all run needs no polling every
//! second (upstream's evented PLEG: the runtime tells, the kubelet does not
//! keep asking).

use std::collections::HashSet;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::runtime::shim::client::ShimClient;
use crate::runtime::shim::protocol::{ContainerState, Status};

pub struct ExitWatch {
    wake: mpsc::UnboundedSender<()>,
    watched: HashSet<String>,
    /// Dropped with the worker, which ends the waits.
    tasks: JoinSet<()>,
}

impl ExitWatch {
    /// Exits are announced on `wake`.
    pub fn new(wake: mpsc::UnboundedSender<()>) -> Self {
        Self {
            wake,
            watched: HashSet::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Waits for each container of `states` that has not exited and is not
    /// waited for yet; forgets the runs that are gone. A run is waited for
    /// once only: a supervisor that cannot be reached must not make the
    /// worker spin.
    pub fn follow(&mut self, shim: &ShimClient, states: &[ContainerState]) {
        while self.tasks.try_join_next().is_some() {}
        self.watched.retain(|id| states.iter().any(|s| &s.id == id));
        for s in states.iter().filter(|s| s.status != Status::Exited) {
            if !self.watched.insert(s.id.clone()) {
                continue;
            }
            let (shim, id, wake) = (shim.clone(), s.id.clone(), self.wake.clone());
            self.tasks.spawn(async move {
                shim.exited(&id).await;
                let _ = wake.send(());
            });
        }
    }
}
