//! The function side of the Runtime API emulator: which binary to run, the environment Lambda gives it, the child
//! process running it ([`FunctionProcess`]), and the init-error assertion the runtime tests share.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{InvokeError, RuntimeApi};

/// How a function that is expected to fail its init ended (see [`RuntimeApi::wait_init_error`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitWait {
    /// It reported `(errorType, errorMessage)` through `/runtime/init/error`.
    Reported(String, String),
    /// It exited without reporting anything (Lambda would only see a crash, with no message).
    ExitedSilently(ExitStatus),
    /// Neither within the time limit: it hangs.
    TimedOut,
}

impl RuntimeApi {
    /// Waits up to `timeout` for `function` to report an init error, returning early (after a short grace for a
    /// report still in flight) when the process exits without one.
    pub async fn wait_init_error(&self, function: &mut FunctionProcess, timeout: Duration) -> InitWait {
        const GRACE: Duration = Duration::from_millis(500);
        let until = Instant::now() + timeout;
        loop {
            if let Some((t, m)) = self.init_error(Duration::from_millis(20)).await {
                return InitWait::Reported(t, m);
            }
            if let Some(status) = function.try_exit_status() {
                return match self.init_error(GRACE).await {
                    Some((t, m)) => InitWait::Reported(t, m),
                    None => InitWait::ExitedSilently(status),
                };
            }
            if Instant::now() >= until {
                return InitWait::TimedOut;
            }
        }
    }
}

/// Test assertion: `bin`, started under a fresh emulator with Lambda's environment plus `extra`, fails its init the
/// way Lambda needs a misconfigured function to fail. It reports `Runtime.InitError` through `/runtime/init/error`
/// with a message naming each of `mentions` (case-insensitive) within `timeout`; an invoke of `probe` then ends at
/// once with that init error (never a hang); the process exits non-zero within 15 s; it never asked for an event.
/// Panics with the function's output otherwise.
pub async fn assert_init_error(
    bin: &Path,
    function_name: &str,
    extra: Vec<(String, String)>,
    mentions: &[&str],
    probe: &Value,
    timeout: Duration,
) {
    let api = RuntimeApi::start().await.expect("the Runtime API emulator starts");
    let mut env = lambda_env(&api, function_name);
    env.extend(extra);
    let mut function = FunctionProcess::spawn(bin, &env).expect("the function binary starts");

    let (error_type, error_message) = match api.wait_init_error(&mut function, timeout).await {
        InitWait::Reported(t, m) => (t, m),
        InitWait::ExitedSilently(status) => panic!(
            "the function exited ({status}) without reporting an init error through /runtime/init/error; output:\n{}",
            function.output()
        ),
        InitWait::TimedOut => {
            function.kill();
            panic!("no init error and no exit within {timeout:?}: a hang; output:\n{}", function.output());
        }
    };
    eprintln!("runtime_api: init error reported: {error_type}: {error_message}");
    assert_eq!(error_type, "Runtime.InitError");
    for mention in mentions {
        assert!(
            error_message.to_lowercase().contains(&mention.to_lowercase()),
            "the init error must mention {mention:?}: {error_type}: {error_message}"
        );
    }

    // Lambda would now answer every invoke with the init error; an invoke here ends at once with it, not a hang.
    match api.invoke(probe, Duration::from_secs(5)).await {
        Err(InvokeError::InitError { error_type: t, .. }) => assert_eq!(t, "Runtime.InitError"),
        other => panic!("expected the init error, got {other:?}"),
    }

    // Once the error is reported the process has nothing left to do: a short limit, whatever `timeout` is.
    const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
    match function.wait_exit(EXIT_TIMEOUT).await {
        Some(status) => assert!(!status.success(), "a failed init must exit non-zero, got {status}"),
        None => {
            function.kill();
            panic!(
                "the function did not exit within {EXIT_TIMEOUT:?} after its init error; output:\n{}",
                function.output()
            );
        }
    }
    assert_eq!(api.polls(), 0, "a function that failed its init must not ask for events");
}

/// The function binary a runtime test runs: `$TB_LAMBDA_BIN_DIR/<name>` when that is set (`scripts/test.sh` points
/// it at the release build, the profile the deployment zips use), else `cargo_bin`, the test package's own build
/// (`env!("CARGO_BIN_EXE_<name>")`). Panics when the file is missing: a runtime test without its binary must fail.
pub fn function_binary(name: &str, cargo_bin: &str) -> std::path::PathBuf {
    let bin = match std::env::var_os("TB_LAMBDA_BIN_DIR") {
        Some(dir) if !dir.is_empty() => std::path::PathBuf::from(dir).join(name),
        _ => std::path::PathBuf::from(cargo_bin),
    };
    assert!(bin.is_file(), "function binary {} does not exist", bin.display());
    match function_runner() {
        Ok(Some(runner)) => eprintln!("runtime_api: running {} under {}", bin.display(), runner.join(" ")),
        Ok(None) => eprintln!("runtime_api: running {}", bin.display()),
        Err(e) => panic!("{e}"),
    }
    bin
}

/// The command that runs a function binary built for another architecture, from `TB_LAMBDA_RUNNER` (words separated
/// by spaces, the binary's path appended): `scripts/release-check.sh` sets it to
/// `qemu-aarch64-static -L /usr/aarch64-linux-gnu` so the runtime tests run the arm64 `bootstrap` of the deployment
/// zips on an x86_64 machine. The runner is a program, not an environment variable of the function, because the
/// function's environment is cleared (as in Lambda). Unset or blank: the binary runs directly.
pub fn function_runner() -> std::io::Result<Option<Vec<String>>> {
    let Some(raw) = std::env::var_os("TB_LAMBDA_RUNNER") else { return Ok(None) };
    let raw = raw
        .into_string()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "TB_LAMBDA_RUNNER is not valid UTF-8"))?;
    let words: Vec<String> = raw.split_whitespace().map(str::to_owned).collect();
    Ok((!words.is_empty()).then_some(words))
}

/// The environment Lambda gives a function (`provided.al2023`), pointing at `api`. Add the function's own
/// configuration to it and pass it to [`FunctionProcess::spawn`].
pub fn lambda_env(api: &RuntimeApi, function_name: &str) -> Vec<(String, String)> {
    let region = "eu-west-1";
    [
        ("AWS_LAMBDA_RUNTIME_API", api.runtime_api_env()),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function_name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/22/[$LATEST]0123456789abcdef0123456789abcdef".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_LAMBDA_LOG_FORMAT", "Text".to_owned()),
        ("AWS_REGION", region.to_owned()),
        ("AWS_DEFAULT_REGION", region.to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A function binary running against a [`RuntimeApi`]. Its stdout and stderr are captured line by line (see
/// [`FunctionProcess::output`]); it is killed when dropped.
pub struct FunctionProcess {
    child: Child,
    output: Arc<StdMutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FunctionProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionProcess").field("pid", &self.child.id()).finish_non_exhaustive()
    }
}

impl FunctionProcess {
    /// Starts `bin` with exactly `env` (the parent's environment is not inherited, as in Lambda), through the
    /// [`function_runner`] when one is set.
    pub fn spawn(bin: &Path, env: &[(String, String)]) -> std::io::Result<FunctionProcess> {
        let mut command = match function_runner()? {
            Some(runner) => {
                let mut c = Command::new(&runner[0]);
                c.args(&runner[1..]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let output = Arc::new(StdMutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(capture(out, output.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(capture(err, output.clone()));
        }
        Ok(FunctionProcess { child, output, readers })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the function printed so far (stdout and stderr interleaved by line).
    pub fn output(&self) -> String {
        tb_shared::sync::lock(&self.output).join("\n")
    }

    /// Whether it has exited, without waiting.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the process to exit on its own; `None` if it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process (if still running) and reaps it.
    pub fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn capture(stream: impl Read + Send + 'static, into: Arc<StdMutex<Vec<String>>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            tb_shared::sync::lock(&into).push(line);
        }
    })
}
