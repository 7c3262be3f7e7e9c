//! Process-level OS settings a server may want, as safe functions: the open-file limit,
//! pinning a thread to a CPU, the kernel's clock tick rate. The `unsafe` calls live here.

use std::io;

/// Sets the soft and hard `RLIMIT_NOFILE` (open descriptors) of this process to `limit`.
///
/// Raising the hard limit needs privilege; lowering it is permanent for the process.
pub fn set_open_files_limit(limit: u64) -> io::Result<()> {
    let rlim = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: limit as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the fully initialised `rlim` and nothing else.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rlim) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Pins the calling thread to CPU `cpu` (Linux only; elsewhere `Unsupported`).
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cpu index too large",
            ));
        }
        // SAFETY: `set` is a plain bit set, zeroed then filled by CPU_SET with an index checked
        // against CPU_SETSIZE; sched_setaffinity reads exactly `size_of::<cpu_set_t>()` bytes.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "thread pinning is Linux-only",
        ))
    }
}

/// Kernel clock ticks per second (the unit of CPU times in `/proc/PID/stat`).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes a constant name and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_ticks_are_positive_and_pinning_to_cpu_zero_works_on_linux() {
        assert!(clock_ticks_per_second() > 0);
        if cfg!(target_os = "linux") {
            pin_current_thread(0).expect("cpu 0 exists");
            assert!(pin_current_thread(1 << 20).is_err());
        }
    }
}
