//! SIGTERM and Ctrl-C for pipelines and schedules.
//!
//! Ballista's executor stops itself on SIGTERM or Ctrl-C, and the embedded cluster runs one inside
//! this process: a signal meant for the pipeline would take the executor down under the running
//! step, and the step would hang. So pipeline commands block both signals in every thread before
//! the runtime starts (threads inherit the mask, and spawned programs get a clean one from the
//! standard library) and take them on one thread with `sigwait`: the first asks the run to drain
//! (running steps finish, no new ones start), the second to cancel.

use tokio::sync::watch;

use backbeat_jobs::pipeline::Stop;

/// Blocks SIGTERM and SIGINT in this process and returns the stop requests they make. Call it
/// before any thread is started.
/// `drain` and `cancel` say, after the signal's name, what the first and the second signal do.
pub fn capture(drain: &'static str, cancel: &'static str) -> std::io::Result<watch::Receiver<Stop>> {
    // SAFETY: plain libc calls on a local, zero-initialised sigset_t.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        set
    };
    let (tx, rx) = watch::channel(Stop::No);
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        let mut level = Stop::No;
        loop {
            let mut signal = 0;
            // SAFETY: `set` lives in this closure; `signal` is a valid out-pointer.
            if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                return;
            }
            level = if level == Stop::No { Stop::Drain } else { Stop::Cancel };
            let name = if signal == libc::SIGINT { "Ctrl-C" } else { "SIGTERM" };
            if level == Stop::Drain {
                eprintln!("{name}: {drain} ({name} again: {cancel})");
            } else {
                eprintln!("{name}: {cancel}");
            }
            if tx.send(level).is_err() {
                std::process::exit(128 + signal);
            }
        }
    })?;
    Ok(rx)
}
