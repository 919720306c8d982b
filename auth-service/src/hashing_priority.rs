//! How the password hashing threads yield the CPU to everything else.
//!
//! bcrypt is the one CPU-heavy thing the pair does on a request, and a
//! login flood keeps it busy. By default its threads run under Linux's
//! `SCHED_IDLE` policy: they get a core only when no other thread wants it,
//! and a waking request thread preempts them at once. A nice value only
//! weighs them lower; a waking thread may still wait for the end of a
//! hashing thread's time slice on every hop of a request, which is what
//! made a login flood triple other requests' tail latency here (README,
//! Reliability, "Login flood"). The cost: on a machine that is busy all the
//! time, logins wait for idle CPU, up to the hashing queue's timeout.

use std::{fmt, str::FromStr};

/// The scheduling of the hashing threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashingPriority {
    /// `SCHED_IDLE`: only CPU time nothing else wants.
    Idle,
    /// The normal policy at this nice value (0 to 19; 0 is the process's own).
    Nice(u8),
}

impl FromStr for HashingPriority {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.eq_ignore_ascii_case("idle") {
            return Ok(Self::Idle);
        }
        match value.parse::<u8>() {
            Ok(nice) if nice <= 19 => Ok(Self::Nice(nice)),
            _ => Err(format!(
                "{value:?} is neither `idle` nor a nice value from 0 to 19"
            )),
        }
    }
}

impl fmt::Display for HashingPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Idle => f.write_str("idle"),
            Self::Nice(nice) => write!(f, "{nice}"),
        }
    }
}

impl HashingPriority {
    /// Gives the calling thread this priority (on Linux both belong to the
    /// thread). Failing leaves it at the process's priority, which only
    /// costs other requests some latency under a login flood.
    pub fn apply_to_this_thread(self) {
        let applied = match self {
            Self::Nice(0) => Ok(()),
            Self::Nice(nice) => rustix::process::setpriority_process(None, i32::from(nice))
                .map_err(|error| error.to_string()),
            Self::Idle => {
                use thread_priority::{
                    NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
                    set_thread_priority_and_policy, thread_native_id,
                };
                set_thread_priority_and_policy(
                    thread_native_id(),
                    ThreadPriority::Min,
                    ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
                )
                .map_err(|error| format!("{error:?}"))
            }
        };
        if let Err(error) = applied {
            tracing::warn!(%error, priority = %self, "cannot lower the priority of a password hashing thread");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_idle_or_a_nice_value() {
        assert_eq!("idle".parse(), Ok(HashingPriority::Idle));
        assert_eq!("IDLE".parse(), Ok(HashingPriority::Idle));
        assert_eq!("0".parse(), Ok(HashingPriority::Nice(0)));
        assert_eq!("19".parse(), Ok(HashingPriority::Nice(19)));
        for bad in ["20", "-1", "", "low"] {
            let error = bad.parse::<HashingPriority>().unwrap_err();
            assert!(error.contains("idle"), "{error}");
        }
        assert_eq!(HashingPriority::Idle.to_string(), "idle");
    }

    /// The policy as Linux reports it for the calling thread.
    fn this_threads_policy() -> String {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Field 41 (policy), counted after the parenthesised command name.
        let after_name = stat.rsplit_once(')').unwrap().1;
        after_name.split_whitespace().nth(38).unwrap().to_owned()
    }

    #[test]
    fn idle_puts_the_thread_under_sched_idle() {
        std::thread::spawn(|| {
            HashingPriority::Idle.apply_to_this_thread();
            // SCHED_IDLE is 5.
            assert_eq!(this_threads_policy(), "5");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_nice_value_keeps_the_normal_policy() {
        std::thread::spawn(|| {
            HashingPriority::Nice(7).apply_to_this_thread();
            assert_eq!(this_threads_policy(), "0");
            assert_eq!(rustix::process::getpriority_process(None).unwrap(), 7);
        })
        .join()
        .unwrap();
    }
}
