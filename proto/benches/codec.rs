//! Criterion benchmark of the frame codec: encode and decode of ~1 MiB batches of realistic
//! log lines, one group per line shape, with throughput in raw line bytes per second.
//!
//! Run: `cargo bench -p outpost-proto --bench codec`. The compression ratio of each shape
//! (raw line bytes / frame bytes) is printed to stderr before its group runs. The data is made
//! here by a seeded PRNG, so every run measures the same bytes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use outpost_proto::{AgentIdentity, Batch, Level, LogRecord, Record, decode, encode};

/// Raw line bytes per batch.
const TARGET_BYTES: usize = 1024 * 1024;

/// SplitMix64: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len);
        while s.len() < len {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(len);
        s
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the start of the fake day, as `HH:MM:SS`.
fn clock(t: u64) -> String {
    format!("{:02}:{:02}:{:02}", (t / 3600) % 24, (t / 60) % 60, t % 60)
}

fn access_line(rng: &mut Rng, t: u64) -> (Vec<u8>, Option<Level>) {
    const PATHS: [&str; 8] = [
        "/",
        "/health",
        "/api/v1/orders",
        "/api/v1/orders/{id}",
        "/api/v1/users/{id}/profile",
        "/static/js/app.{hex}.js",
        "/static/css/main.{hex}.css",
        "/search?q=widgets&page={n}",
    ];
    const METHODS: [&str; 4] = ["GET", "GET", "GET", "POST"];
    const AGENTS: [&str; 5] = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "curl/8.5.0",
        "kube-probe/1.29",
    ];
    const STATUS: [u16; 10] = [200, 200, 200, 200, 200, 200, 304, 404, 301, 500];
    let path = rng
        .pick(&PATHS)
        .replace("{id}", &rng.below(1_000_000).to_string())
        .replace("{hex}", &rng.hex(8))
        .replace("{n}", &(1 + rng.below(20)).to_string());
    let status = STATUS[rng.below(STATUS.len() as u64) as usize];
    let line = format!(
        "{}.{}.{}.{} - - [{:02}/{}/2024:{} +0000] \"{} {} HTTP/1.1\" {} {} \"{}\" \"{}\" rt={}.{:03}",
        [10, 172, 192, 203][rng.below(4) as usize],
        rng.below(256),
        rng.below(256),
        1 + rng.below(254),
        1 + (t / 86_400) % 28,
        MONTHS[((t / 86_400 / 28) % 12) as usize],
        clock(t),
        rng.pick(&METHODS),
        path,
        status,
        rng.below(50_000),
        rng.pick(&["-", "https://shop.example.com/", "https://www.google.com/"]),
        rng.pick(&AGENTS),
        rng.below(2),
        rng.below(1000),
    );
    (line.into_bytes(), None)
}

fn json_line(rng: &mut Rng, t: u64) -> (Vec<u8>, Option<Level>) {
    const EVENTS: [(&str, &str, Level); 6] = [
        ("info", "order placed", Level::Info),
        ("info", "payment authorised", Level::Info),
        ("debug", "cache miss", Level::Debug),
        ("warn", "slow downstream call", Level::Warn),
        ("info", "user signed in", Level::Info),
        ("error", "inventory reservation failed", Level::Error),
    ];
    const LOGGERS: [&str; 4] = [
        "com.example.orders.OrderService",
        "com.example.payments.PaymentGateway",
        "com.example.inventory.ReservationClient",
        "com.example.auth.SessionManager",
    ];
    let (level, msg, parsed) = EVENTS[rng.below(EVENTS.len() as u64) as usize];
    let line = format!(
        "{{\"ts\":\"2024-05-{:02}T{}.{:03}Z\",\"level\":\"{level}\",\"logger\":\"{}\",\
         \"thread\":\"worker-{}\",\"msg\":\"{msg}\",\"order_id\":\"ord_{}\",\"user_id\":{},\
         \"latency_ms\":{}.{},\"trace_id\":\"{}\",\"span_id\":\"{}\",\"region\":\"{}\"}}",
        1 + (t / 86_400) % 28,
        clock(t),
        rng.below(1000),
        rng.pick(&LOGGERS),
        rng.below(16),
        rng.hex(12),
        rng.below(10_000_000),
        rng.below(900),
        rng.below(10),
        rng.hex(32),
        rng.hex(16),
        rng.pick(&["eu-central-1", "eu-west-1", "us-east-1"]),
    );
    (line.into_bytes(), Some(parsed))
}

fn stack_trace(rng: &mut Rng, t: u64) -> (Vec<u8>, Option<Level>) {
    const EXCEPTIONS: [&str; 4] = [
        "java.lang.IllegalStateException: reservation already released",
        "java.net.SocketTimeoutException: Read timed out",
        "java.lang.NullPointerException: Cannot invoke \"com.example.orders.Order.getItems()\" because \"order\" is null",
        "org.springframework.dao.DataIntegrityViolationException: could not execute statement",
    ];
    // One call stack, innermost first, as a Spring Boot service on Tomcat prints it: a trace is
    // a suffix of it, so traces repeat long runs of identical frames, as real ones do.
    const STACK: [&str; 24] = [
        "com.example.inventory.ReservationClient.reserve(ReservationClient.java:{n})",
        "com.example.inventory.ReservationClient.reserveAll(ReservationClient.java:88)",
        "com.example.orders.OrderService.place(OrderService.java:{n})",
        "com.example.orders.OrderService$$SpringCGLIB$$0.place(<generated>)",
        "com.example.orders.OrderController.create(OrderController.java:{n})",
        "jdk.internal.reflect.GeneratedMethodAccessor{n}.invoke(Unknown Source)",
        "java.base/jdk.internal.reflect.DelegatingMethodAccessorImpl.invoke(DelegatingMethodAccessorImpl.java:43)",
        "java.base/java.lang.reflect.Method.invoke(Method.java:580)",
        "org.springframework.web.method.support.InvocableHandlerMethod.doInvoke(InvocableHandlerMethod.java:255)",
        "org.springframework.web.method.support.InvocableHandlerMethod.invokeForRequest(InvocableHandlerMethod.java:188)",
        "org.springframework.web.servlet.mvc.method.annotation.ServletInvocableHandlerMethod.invokeAndHandle(ServletInvocableHandlerMethod.java:118)",
        "org.springframework.web.servlet.mvc.method.annotation.RequestMappingHandlerAdapter.invokeHandlerMethod(RequestMappingHandlerAdapter.java:926)",
        "org.springframework.web.servlet.DispatcherServlet.doDispatch(DispatcherServlet.java:1089)",
        "org.springframework.web.servlet.DispatcherServlet.doService(DispatcherServlet.java:979)",
        "org.springframework.web.servlet.FrameworkServlet.processRequest(FrameworkServlet.java:1014)",
        "org.springframework.web.servlet.FrameworkServlet.doPost(FrameworkServlet.java:914)",
        "jakarta.servlet.http.HttpServlet.service(HttpServlet.java:590)",
        "org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)",
        "org.apache.catalina.core.ApplicationFilterChain.internalDoFilter(ApplicationFilterChain.java:195)",
        "org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:140)",
        "org.apache.catalina.core.StandardWrapperValve.invoke(StandardWrapperValve.java:166)",
        "org.apache.coyote.http11.Http11Processor.service(Http11Processor.java:391)",
        "org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun(NioEndpoint.java:1744)",
        "java.base/java.lang.Thread.run(Thread.java:1583)",
    ];
    let mut s = format!(
        "2024-05-{:02} {},{:03} ERROR [http-nio-8080-exec-{}] c.e.o.OrderController - request {} failed\n{}",
        1 + (t / 86_400) % 28,
        clock(t),
        rng.below(1000),
        1 + rng.below(200),
        rng.hex(16),
        rng.pick(&EXCEPTIONS),
    );
    let line_no = 20 + rng.below(400);
    let from = rng.below(5) as usize;
    for frame in &STACK[from..] {
        s.push_str("\n\tat ");
        s.push_str(&frame.replace("{n}", &line_no.to_string()));
    }
    if rng.below(2) == 0 {
        s.push_str("\nCaused by: ");
        s.push_str(rng.pick(&EXCEPTIONS));
        for frame in &STACK[..2 + rng.below(3) as usize] {
            s.push_str("\n\tat ");
            s.push_str(&frame.replace("{n}", &rng.below(400).to_string()));
        }
        s.push_str(&format!("\n\t... {} more", STACK.len() - 2));
    }
    (s.into_bytes(), Some(Level::Error))
}

/// A line generator: the line's bytes and the level a parser would give it.
type LineFn = fn(&mut Rng, u64) -> (Vec<u8>, Option<Level>);

/// A log input: how its lines look, the file they come from and the service name.
#[derive(Clone, Copy)]
struct Input {
    line: LineFn,
    source: &'static str,
    service: &'static str,
}

/// A batch of about [`TARGET_BYTES`] raw line bytes, each line from one of `inputs`.
fn batch(seed: u64, inputs: &[Input]) -> (Batch, u64) {
    let mut rng = Rng(seed);
    let mut records = Vec::new();
    let mut raw = 0usize;
    let mut t = 36_000u64;
    while raw < TARGET_BYTES {
        t += rng.below(2);
        let input = inputs[rng.below(inputs.len() as u64) as usize];
        let (line, level) = (input.line)(&mut rng, t);
        raw += line.len();
        records.push(Record::Log(LogRecord {
            ts_ms: 1_714_521_600_000 + (t * 1000) as i64 + rng.below(1000) as i64,
            source: input.source.to_owned(),
            service: input.service.to_owned(),
            line,
            level,
        }));
    }
    let batch = Batch {
        agent: AgentIdentity {
            agent_id: "0f6c2a8e4b1d4c7e9a3b5d7f1e2c4a6b".to_owned(),
            hostname: "edge-eu-01".to_owned(),
            agent_version: "0.1.0".to_owned(),
        },
        seq: seed,
        created_ms: 1_714_521_600_000,
        records,
    };
    (batch, raw as u64)
}

const ACCESS: Input = Input {
    line: access_line,
    source: "/var/log/nginx/access.log",
    service: "nginx",
};
const JSON: Input = Input {
    line: json_line,
    source: "/var/log/orders/app.json",
    service: "orders",
};
const JAVA: Input = Input {
    line: stack_trace,
    source: "/var/log/orders/catalina.out",
    service: "tomcat",
};

fn codec(c: &mut Criterion) {
    let shapes: [(&str, &[Input]); 4] = [
        ("access_log", &[ACCESS]),
        ("json", &[JSON]),
        ("java_stack_trace", &[JAVA]),
        ("mixed", &[ACCESS, ACCESS, JSON, JSON, JAVA]),
    ];
    for (i, (name, inputs)) in shapes.into_iter().enumerate() {
        let (batch, raw) = batch(0xC0DE + i as u64, inputs);
        let frame = encode(&batch).expect("the bench batch fits the limits");
        assert_eq!(
            decode(&frame).expect("the bench frame decodes"),
            batch,
            "{name} round trip"
        );
        eprintln!(
            "codec/{name}: {} records, {raw} raw line bytes, {} frame bytes, compression ratio {:.2}",
            batch.records.len(),
            frame.len(),
            raw as f64 / frame.len() as f64
        );
        let mut group = c.benchmark_group(format!("codec/{name}"));
        group.throughput(Throughput::Bytes(raw));
        group.bench_function("encode", |b| b.iter(|| encode(black_box(&batch))));
        group.bench_function("decode", |b| b.iter(|| decode(black_box(&frame))));
        group.finish();
    }
}

criterion_group! {
    name = benches;
    // 4 shapes x 2 functions x ~7 s (warm-up, samples, analysis): about 75 s on 2 cores.
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = codec
}
criterion_main!(benches);
