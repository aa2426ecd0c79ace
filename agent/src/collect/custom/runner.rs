//! The schedule of the custom inputs (every `[[exec]]` and the `[textfile]` directory, each on
//! its own interval, all run by one thread: whichever is due next runs next), and the
//! reporting of their problems: WARN log lines, the same problem at most once per
//! [`REPORT_EVERY`], and every problem counted ([`CustomRunner::errors`]).

use super::validate::{Seen, to_points};
use super::{Read, exec, jsonl, prom, textfile};
use crate::config::{Config, ExecFormat, ExecInput, TextfileConfig};
use outpost_proto::MetricPoint;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The same problem (same input, file or command, line and reason) is logged at most once in
/// this long; it is counted every time.
pub const REPORT_EVERY: Duration = Duration::from_secs(600);

/// Most problems of one input logged from one run; the rest are summed up in one line.
pub const MAX_LOGGED_PER_RUN: usize = 10;

/// What a problem is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// The textfile directory.
    Dir(PathBuf),
    /// A file in it.
    File(PathBuf),
    /// An `[[exec]]` input: its name and command line.
    Exec {
        /// `exec[].name`.
        name: String,
        /// The command, its words joined by spaces.
        command: String,
    },
}

/// One problem of one run: a bad line (skipped) or a file or run whose output was discarded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Problem {
    /// The file, directory or command.
    pub subject: Subject,
    /// The line of the file or output, for a bad line.
    pub line: Option<usize>,
    /// What is wrong.
    pub error: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Subject::Dir(p) | Subject::File(p) => write!(f, "{}", p.display())?,
            Subject::Exec { name, .. } => write!(f, "exec {name}")?,
        }
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.error)
    }
}

impl Problem {
    fn log(&self) {
        let error = &self.error;
        match (&self.subject, self.line) {
            (Subject::File(p), Some(line)) => {
                tracing::warn!(file = %p.display(), line, %error, "textfile: bad line skipped");
            }
            (Subject::File(p), None) => {
                tracing::warn!(file = %p.display(), %error, "textfile: file not read");
            }
            (Subject::Dir(p), _) => {
                tracing::warn!(dir = %p.display(), %error, "textfile: directory not read");
            }
            (Subject::Exec { name, .. }, Some(line)) => {
                tracing::warn!(exec = %name, line, %error, "exec: bad output line skipped");
            }
            (Subject::Exec { name, command }, None) => {
                tracing::warn!(exec = %name, %command, %error, "exec: run failed; output discarded");
            }
        }
    }
}

/// Logs problems, each at most once per [`REPORT_EVERY`], and counts them all.
#[derive(Debug, Default)]
pub struct Reporter {
    last: HashMap<Problem, Instant>,
    errors: Arc<AtomicU64>,
}

impl Reporter {
    /// Count the problems of one run of one input and log those not logged lately; returns
    /// how many were logged.
    pub fn report(&mut self, problems: &[Problem], now: Instant) -> usize {
        if problems.is_empty() {
            return 0;
        }
        self.errors
            .fetch_add(problems.len() as u64, Ordering::Relaxed);
        self.last
            .retain(|_, at| now.saturating_duration_since(*at) < REPORT_EVERY);
        let mut logged = 0;
        let mut held = 0;
        for p in problems {
            if self.last.contains_key(p) {
                continue;
            }
            if logged == MAX_LOGGED_PER_RUN {
                held += 1;
                continue;
            }
            self.last.insert(p.clone(), now);
            p.log();
            logged += 1;
        }
        if held > 0 {
            let first = &problems[0];
            let more = Problem {
                subject: first.subject.clone(),
                line: None,
                error: format!("{held} more problems not shown"),
            };
            if !self.last.contains_key(&more) {
                self.last.insert(more.clone(), now);
                more.log();
                logged += 1;
            }
        }
        logged
    }
}

#[derive(Debug)]
enum Source {
    Textfile(TextfileConfig),
    Exec(ExecInput),
}

#[derive(Debug)]
struct Scheduled {
    source: Source,
    interval: Duration,
    next: Instant,
}

/// Runs the custom inputs when they are due.
#[derive(Debug)]
pub struct CustomRunner {
    inputs: Vec<Scheduled>,
    reporter: Reporter,
}

impl CustomRunner {
    /// The runner of `config`'s `[textfile]` and `[[exec]]` inputs, each due first at
    /// `now`; `None` when there are none.
    pub fn from_config(config: &Config, now: Instant) -> Option<Self> {
        Self::new(config.textfile.as_ref(), &config.exec, now)
    }

    /// The runner of these inputs, each due first at `now`; `None` when there are none.
    pub fn new(
        textfile: Option<&TextfileConfig>,
        exec: &[ExecInput],
        now: Instant,
    ) -> Option<Self> {
        let mut inputs: Vec<Scheduled> = textfile
            .map(|t| Scheduled {
                interval: t.interval,
                source: Source::Textfile(t.clone()),
                next: now,
            })
            .into_iter()
            .collect();
        inputs.extend(exec.iter().map(|e| Scheduled {
            interval: e.interval,
            source: Source::Exec(e.clone()),
            next: now,
        }));
        (!inputs.is_empty()).then(|| Self {
            inputs,
            reporter: Reporter::default(),
        })
    }

    /// The count of every problem so far (for the `agent.custom_errors` metric).
    pub fn errors(&self) -> Arc<AtomicU64> {
        self.reporter.errors.clone()
    }

    /// How many inputs it runs: (the textfile directory, if any; the `[[exec]]` commands).
    pub fn inputs(&self) -> (bool, usize) {
        let textfile = self
            .inputs
            .iter()
            .any(|s| matches!(s.source, Source::Textfile(_)));
        (textfile, self.inputs.len() - usize::from(textfile))
    }

    /// When the next input is due.
    pub fn deadline(&self) -> Option<Instant> {
        self.inputs.iter().map(|s| s.next).min()
    }

    /// Run every input due at `now` (in config order; each is due again an interval after it
    /// was due, or an interval after `now` when it fell behind), handing each run's points to
    /// `out`; `now_ms` stamps samples without a timestamp. Returns early once `stop` is set.
    pub fn run_due(
        &mut self,
        now: Instant,
        now_ms: i64,
        stop: &AtomicBool,
        out: &mut dyn FnMut(Vec<MetricPoint>),
    ) {
        for s in &mut self.inputs {
            if s.next > now {
                continue;
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let (points, problems) = run_source(&s.source, now_ms, stop);
            // Due again an interval after it was due; one that fell more than an interval
            // behind (the agent was suspended) skips the runs it missed.
            s.next += s.interval;
            if s.next <= now {
                s.next = now + s.interval;
            }
            self.reporter.report(&problems, Instant::now());
            if !points.is_empty() {
                out(points);
            }
        }
    }
}

/// One run of one input: its points and its problems.
fn run_source(source: &Source, now_ms: i64, stop: &AtomicBool) -> (Vec<MetricPoint>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut points = Vec::new();
    let whole = |subject: Subject, error: String| Problem {
        subject,
        line: None,
        error,
    };
    let mut take = |read: Read, subject: &Subject| {
        problems_from(read.errors, subject, &mut problems);
        points.extend(read.points);
    };
    match source {
        Source::Textfile(t) => match textfile::read_dir(&t.dir, now_ms) {
            Err(error) => return (points, vec![whole(Subject::Dir(t.dir.clone()), error)]),
            Ok((files, over)) => {
                let mut failed = Vec::new();
                if let Some(error) = over {
                    failed.push(whole(Subject::Dir(t.dir.clone()), error));
                }
                for f in files {
                    let subject = Subject::File(f.path);
                    match f.read {
                        Ok(read) => take(read, &subject),
                        Err(error) => failed.push(whole(subject, error)),
                    }
                }
                problems.extend(failed);
            }
        },
        Source::Exec(e) => {
            let subject = Subject::Exec {
                name: e.name.clone(),
                command: e.command.join(" "),
            };
            match exec::run(&e.command, e.timeout, stop) {
                Ok(output) => {
                    let parsed = match e.format {
                        ExecFormat::Prometheus => prom::parse(&output),
                        ExecFormat::Json => jsonl::parse(&output),
                    };
                    take(
                        to_points(parsed, &e.name, now_ms, &mut Seen::default()),
                        &subject,
                    );
                }
                // Not the command's problem: the agent is stopping.
                Err(exec::ExecError::Stopped) => {}
                Err(error) => problems.push(whole(subject, error.to_string())),
            }
        }
    }
    (points, problems)
}

fn problems_from(errors: Vec<super::LineError>, subject: &Subject, into: &mut Vec<Problem>) {
    into.extend(errors.into_iter().map(|e| Problem {
        subject: subject.clone(),
        line: Some(e.line),
        error: e.reason,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(line: usize, error: &str) -> Problem {
        Problem {
            subject: Subject::File(PathBuf::from("/t/bad.prom")),
            line: Some(line),
            error: error.to_owned(),
        }
    }

    #[test]
    fn the_same_problem_is_logged_once_per_period_and_counted_every_time() {
        let mut r = Reporter::default();
        let t0 = Instant::now();
        let ps = [problem(3, "bad"), problem(4, "bad")];
        assert_eq!(r.report(&ps, t0), 2);
        assert_eq!(r.report(&ps, t0 + Duration::from_secs(60)), 0);
        assert_eq!(
            r.report(&[problem(5, "new")], t0 + Duration::from_secs(61)),
            1
        );
        assert_eq!(r.report(&ps, t0 + REPORT_EVERY), 2);
        assert_eq!(r.errors.load(Ordering::Relaxed), 7);
        assert_eq!(r.report(&[], t0 + REPORT_EVERY), 0);
    }

    #[test]
    fn a_run_logs_at_most_a_bounded_number_and_sums_up_the_rest() {
        let mut r = Reporter::default();
        let ps: Vec<Problem> = (1..=50).map(|l| problem(l, "bad")).collect();
        let t0 = Instant::now();
        assert_eq!(r.report(&ps, t0), MAX_LOGGED_PER_RUN + 1);
        assert_eq!(r.errors.load(Ordering::Relaxed), 50);
        // The next run logs the ones held back (the summary line is rate limited too).
        assert_eq!(
            r.report(&ps, t0 + Duration::from_secs(1)),
            MAX_LOGGED_PER_RUN + 1
        );
    }

    #[test]
    fn problems_display_their_source_and_line() {
        assert_eq!(problem(3, "bad").to_string(), "/t/bad.prom:3: bad");
        let p = Problem {
            subject: Subject::Exec {
                name: "probe".into(),
                command: "/bin/false".into(),
            },
            line: None,
            error: "exit status: 1".into(),
        };
        assert_eq!(p.to_string(), "exec probe: exit status: 1");
    }

    fn exec(name: &str, command: &[&str], interval: Duration, format: ExecFormat) -> ExecInput {
        ExecInput {
            name: name.to_owned(),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            interval,
            timeout: Duration::from_secs(30),
            format,
        }
    }

    #[test]
    fn nothing_configured_is_no_runner() {
        assert!(CustomRunner::new(None, &[], Instant::now()).is_none());
    }

    #[test]
    fn inputs_run_when_due_and_their_problems_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.prom"), "tf_metric{k=\"v\"} 4\nbroken\n").unwrap();
        let t0 = Instant::now();
        let textfile = TextfileConfig {
            dir: dir.path().to_path_buf(),
            interval: Duration::from_secs(60),
        };
        let execs = [
            exec(
                "json",
                &[
                    "/bin/sh",
                    "-c",
                    r#"echo '{"name":"j","value":2,"unit":"Bytes"}'"#,
                ],
                Duration::from_secs(10),
                ExecFormat::Json,
            ),
            exec(
                "fails",
                &["false"],
                Duration::from_secs(30),
                ExecFormat::Prometheus,
            ),
        ];
        let mut runner = CustomRunner::new(Some(&textfile), &execs, t0).unwrap();
        assert_eq!(runner.inputs(), (true, 2));
        let errors = runner.errors();
        assert_eq!(runner.deadline(), Some(t0));
        let stop = AtomicBool::new(false);
        let mut got: Vec<Vec<MetricPoint>> = Vec::new();
        runner.run_due(t0, 42, &stop, &mut |p| got.push(p));
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0][0].name, "tf_metric");
        assert_eq!(got[0][0].ts_ms, 42);
        assert_eq!(got[1][0].name, "j");
        assert_eq!(got[1][0].unit, outpost_proto::Unit::Bytes);
        // The bad line and the failed command.
        assert_eq!(errors.load(Ordering::Relaxed), 2);
        // Next due: the JSON command, 10 s after the start.
        assert_eq!(runner.deadline(), Some(t0 + Duration::from_secs(10)));
        got.clear();
        runner.run_due(t0 + Duration::from_secs(10), 43, &stop, &mut |p| {
            got.push(p)
        });
        assert_eq!(got.len(), 1);
        assert_eq!(got[0][0].name, "j");
        assert_eq!(errors.load(Ordering::Relaxed), 2);
        // Far behind (the host was suspended): one run, then due an interval after `now`.
        got.clear();
        let late = t0 + Duration::from_secs(1000);
        runner.run_due(late, 45, &stop, &mut |p| got.push(p));
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(runner.deadline(), Some(late + Duration::from_secs(10)));
        // Once stopping, nothing more runs.
        stop.store(true, Ordering::Relaxed);
        got.clear();
        runner.run_due(t0 + Duration::from_secs(600), 44, &stop, &mut |p| {
            got.push(p)
        });
        assert!(got.is_empty());
    }
}
