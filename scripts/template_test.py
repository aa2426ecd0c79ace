#!/usr/bin/env python3
"""Checks of sink/template.yaml (run by scripts/check-template.sh, with the venv of scripts/tools.sh).

1. The SAM transform, offline (samtranslator), and the security properties of the resulting
   CloudFormation: no wildcard in an allowed IAM action, resources of this stack only, the
   bucket's public access block, encryption and TLS-only policy, the Function URL's AWS_IAM
   auth, the Kinesis event source mapping's settings, the schedule's event, the environment.
   The table's key schema, TTL attribute, S3 prefixes and variable names are compared with the
   Rust sources that define them (sink/src/backend/aws/{dynamo,s3,settings}.rs).
2. The translated template deployed to moto (CloudFormation CreateStack), Kinesis off and on:
   the stack completes, and the bucket, table, stream and agent policy of its Outputs exist.
   moto's CloudFormation skips, with a warning, the types it does not implement: here
   AWS::CloudWatch::Alarm, AWS::CloudWatch::Dashboard, AWS::Lambda::Url, AWS::S3::BucketPolicy
   and AWS::SNS::Subscription; and it applies neither the bucket's public access block nor
   its lifecycle nor the table's TTL. The checks of step 1 cover them.
3. Every alarm of the translated template, its intrinsics resolved with the parameters deployed,
   created in moto with PutMetricAlarm and read back with DescribeAlarms: metric or math,
   statistic, period, threshold, comparison, M of N, missing-data treatment and actions,
   against the expectations written below from docs/alarms.md (not from the template).
"""

import io
import json
import os
import re
import signal
import socket
import subprocess
import time
import unittest
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "sink" / "template.yaml"
REGION = "us-east-1"
ARTIFACTS = "outpost-artifacts"

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)
for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(var, None)

import boto3  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


# ----------------------------------------------------------------------------- translation


class NoManagedPolicies:
    """The template names no AWS managed policy, so SAM needs no IAM lookup."""

    def load(self):
        return {}


def translate():
    sam = yaml_parse(TEMPLATE.read_text())
    # What `sam deploy` / `aws cloudformation package` do to the local zip path.
    sam["Resources"]["SinkFunction"]["Properties"]["CodeUri"] = f"s3://{ARTIFACTS}/bootstrap.zip"
    return transform(sam, {}, NoManagedPolicies())


CFN = translate()
RES = CFN["Resources"]


def of_type(kind):
    return {k: v for k, v in RES.items() if v["Type"] == kind}


def rust_const(path, name):
    text = (ROOT / path).read_text()
    m = re.search(rf'pub const {name}: &str = "([^"]*)";', text)
    assert m, f"{name} not found in {path}"
    return m.group(1)


def rust_const_list(path, name):
    text = (ROOT / path).read_text()
    m = re.search(rf"pub const {name}: \[&str; \d+\] = \[([^\]]*)\];", text)
    assert m, f"{name} not found in {path}"
    return re.findall(r'"([^"]*)"', m.group(1))


def parse_selection(text):
    """OUTPOST_CLOUDWATCH_METRICS as {name: None (every dimension set) or a set of sorted
    ((key, value), ...)}, or None for `*` (everything): the simple cases only (the sink's
    select.rs is the parser)."""
    if text.strip() == "*":
        return None
    out = {}
    for item in re.findall(r"[^,{]+(?:\{[^}]*\})?", text):
        item = item.strip()
        if not item:
            continue
        name, _, dims = item.partition("{")
        name = name.strip()
        if not dims:
            out[name] = None
        elif out.get(name, set()) is not None:
            pairs = [p.split("=", 1) for p in dims.rstrip("}").split(",") if p.strip()]
            out.setdefault(name, set()).add(tuple(sorted((k.strip(), v.strip()) for k, v in pairs)))
    return out


def branches(node):
    """A statement list's statements, both branches of each Fn::If (NoValue dropped)."""
    for item in node:
        if isinstance(item, dict) and "Fn::If" in item:
            yield from branches(item["Fn::If"][1:])
        elif item != {"Ref": "AWS::NoValue"}:
            yield item


def as_list(v):
    return v if isinstance(v, list) else [v]


def iam_documents():
    """(where, document) of every identity policy the stack creates."""
    for name, r in RES.items():
        p = r["Properties"]
        if r["Type"] == "AWS::IAM::Role":
            for pol in p.get("Policies", []):
                yield f"{name}/{pol['PolicyName']}", pol["PolicyDocument"]
        elif r["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            yield name, p["PolicyDocument"]


class Translated(unittest.TestCase):
    def test_allowed_iam_actions_have_no_wildcard_and_resources_are_this_stacks(self):
        docs = list(iam_documents())
        self.assertEqual({d for d, _ in docs}, {"SinkRole/outpost-sink", "AgentPolicy"})
        for where, doc in docs:
            for st in branches(doc["Statement"]):
                self.assertEqual(st["Effect"], "Allow", where)
                for action in as_list(st["Action"]):
                    self.assertNotIn("*", action, f"{where}: {st.get('Sid')}")
                for resource in as_list(st["Resource"]):
                    if resource == "*":
                        # Only PutMetricData (no resource type), held to the namespace.
                        self.assertEqual(st["Action"], "cloudwatch:PutMetricData", where)
                        self.assertEqual(
                            st["Condition"],
                            {"StringEquals": {"cloudwatch:namespace": {"Ref": "MetricsNamespace"}}},
                        )
                    else:
                        self.assertIsInstance(resource, dict, f"{where}: {resource}")
                        text = json.dumps(resource)
                        self.assertTrue(
                            any(r in text for r in RES), f"{where}: {resource} is not this stack's"
                        )
        # The role of the function: no AWS managed policy (they are broader).
        self.assertNotIn("ManagedPolicyArns", RES["SinkRole"]["Properties"])

    def test_function_role_allows_exactly_what_the_sink_calls(self):
        doc = RES["SinkRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        actions = sorted(a for st in branches(doc["Statement"]) for a in as_list(st["Action"]))
        self.assertEqual(
            actions,
            sorted(
                [
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "s3:PutObject",
                    "dynamodb:BatchWriteItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:Query",
                    "cloudwatch:PutMetricData",
                    "kinesis:DescribeStream",
                    "kinesis:DescribeStreamSummary",
                    "kinesis:GetRecords",
                    "kinesis:GetShardIterator",
                    "kinesis:ListShards",
                    "sqs:SendMessage",
                ]
            ),
        )
        put = next(st for st in branches(doc["Statement"]) if st["Action"] == "s3:PutObject")
        prefixes = sorted(r["Fn::Sub"].split("/", 1)[1] for r in put["Resource"])
        dead = rust_const("sink/src/backend/aws/s3.rs", "DEAD_LETTER_PREFIX")
        self.assertEqual(prefixes, sorted(["logs/*", f"{dead}/*"]))

    def test_agent_policy(self):
        doc = RES["AgentPolicy"]["Properties"]["PolicyDocument"]
        sts = {st["Sid"]: st for st in branches(doc["Statement"])}
        self.assertEqual(set(sts), {"InvokeFunctionUrl", "InvokeThroughFunctionUrl", "PutRecords"})
        url = sts["InvokeFunctionUrl"]
        self.assertEqual(url["Action"], "lambda:InvokeFunctionUrl")
        self.assertEqual(url["Resource"], {"Fn::GetAtt": ["SinkFunction", "Arn"]})
        self.assertEqual(
            url["Condition"], {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}
        )
        via = sts["InvokeThroughFunctionUrl"]
        self.assertEqual(via["Condition"], {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}})
        self.assertEqual(sts["PutRecords"]["Action"], "kinesis:PutRecords")
        self.assertEqual(sts["PutRecords"]["Resource"], {"Fn::GetAtt": ["Stream", "Arn"]})

    def test_bucket_is_private_encrypted_and_tls_only(self):
        bucket = RES["LogBucket"]["Properties"]
        self.assertEqual(
            bucket["PublicAccessBlockConfiguration"],
            {k: True for k in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"]},
        )
        sse = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        self.assertEqual(sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256")
        self.assertEqual(
            bucket["OwnershipControls"]["Rules"], [{"ObjectOwnership": "BucketOwnerEnforced"}]
        )
        self.assertNotIn("VersioningConfiguration", bucket)
        rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
        tiers = [t["StorageClass"] for t in rules["logs-tiering"]["Transitions"]]
        self.assertEqual(tiers, ["STANDARD_IA", "GLACIER"])
        self.assertEqual(CFN["Parameters"]["LogsInfrequentAccessDays"]["MinValue"], 30)
        self.assertIn("AbortIncompleteMultipartUpload", rules["abort-incomplete-uploads"])
        (policy,) = of_type("AWS::S3::BucketPolicy").values()
        deny = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        self.assertEqual(len(deny), 1)
        self.assertEqual(deny[0]["Principal"], "*")
        self.assertEqual(deny[0]["Condition"], {"Bool": {"aws:SecureTransport": "false"}})
        self.assertEqual(
            deny[0]["Resource"],
            [{"Fn::GetAtt": ["LogBucket", "Arn"]}, {"Fn::Sub": "${LogBucket.Arn}/*"}],
        )

    def test_table_matches_dynamo_rs(self):
        table = RES["MetricsTable"]["Properties"]
        dynamo = "sink/src/backend/aws/dynamo.rs"
        pk, ts = rust_const(dynamo, "PK"), rust_const(dynamo, "TS")
        self.assertEqual(table["BillingMode"], "PAY_PER_REQUEST")
        self.assertEqual(
            table["KeySchema"],
            [{"AttributeName": pk, "KeyType": "HASH"}, {"AttributeName": ts, "KeyType": "RANGE"}],
        )
        self.assertEqual(
            sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]),
            sorted([(pk, "S"), (ts, "N")]),
        )
        self.assertEqual(
            table["TimeToLiveSpecification"],
            {"AttributeName": rust_const(dynamo, "EXPIRES_AT"), "Enabled": True},
        )
        self.assertEqual(table["SSESpecification"], {"SSEEnabled": True})

    def test_function_url_and_function(self):
        (url,) = of_type("AWS::Lambda::Url").values()
        self.assertEqual(url["Properties"]["AuthType"], "AWS_IAM")
        for perm in of_type("AWS::Lambda::Permission").values():
            self.assertNotEqual(perm["Properties"].get("Principal"), "*")
            self.assertNotIn("FunctionUrlAuthType", perm["Properties"])
        fn = RES["SinkFunction"]["Properties"]
        self.assertEqual((fn["Runtime"], fn["Handler"]), ("provided.al2023", "bootstrap"))
        env = fn["Environment"]["Variables"]
        settings = (ROOT / "sink/src/backend/aws/settings.rs").read_text()
        for name in env:
            self.assertIn(f'"{name}"', settings, f"{name} is not read by settings.rs")
        self.assertEqual(env["OUTPOST_CLOUDWATCH_MODE"], "emf")
        self.assertEqual(env["OUTPOST_CLOUDWATCH_SCOPE"], {"Ref": "MetricsScope"})
        self.assertEqual(CFN["Parameters"]["MetricsScope"]["AllowedValues"], ["fleet", "per_host"])
        metrics_var = rust_const("sink/src/backend/aws/settings.rs", "ENV_CLOUDWATCH_METRICS")
        self.assertEqual(metrics_var, "OUTPOST_CLOUDWATCH_METRICS")
        self.assertEqual(env[metrics_var], {"Ref": "CloudWatchMetrics"})
        self.assertEqual(CFN["Parameters"]["CloudWatchMetrics"]["MinLength"], 1, "empty would mean *")
        for name in [
            "OUTPOST_BUCKET",
            "OUTPOST_TABLE",
            "OUTPOST_METRICS_NAMESPACE",
            "OUTPOST_METRICS_RETENTION_DAYS",
            "OUTPOST_SILENT_AFTER_MINUTES",
            "OUTPOST_CPU_THRESHOLD",
            "OUTPOST_MEMORY_THRESHOLD",
        ]:
            self.assertIn(name, env)
        self.assertEqual(
            RES["SinkLogGroup"]["Properties"]["RetentionInDays"], {"Ref": "LogRetentionDays"}
        )
        self.assertEqual(fn["LoggingConfig"]["LogGroup"], {"Ref": "SinkLogGroup"})

    def test_health_check_schedule(self):
        (rule,) = of_type("AWS::Events::Rule").values()
        (target,) = rule["Properties"]["Targets"]
        self.assertEqual(json.loads(target["Input"]), {"outpost": "health-check"})
        self.assertEqual(
            rule["Properties"]["ScheduleExpression"],
            {"Fn::FindInMap": ["HealthCheck", {"Ref": "HealthCheckMinutes"}, "Schedule"]},
        )
        for minutes, row in CFN["Mappings"]["HealthCheck"].items():
            unit = "minute" if minutes == "1" else "minutes"
            self.assertEqual(row["Schedule"], f"rate({minutes} {unit})")
            self.assertEqual(row["Period"], 60 * int(minutes))

    def test_kinesis_mapping(self):
        (esm,) = of_type("AWS::Lambda::EventSourceMapping").values()
        self.assertEqual(esm["Condition"], "HasKinesis")
        p = esm["Properties"]
        self.assertIs(p["BisectBatchOnFunctionError"], True)
        self.assertEqual(p["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        self.assertEqual(
            p["DestinationConfig"]["OnFailure"]["Destination"],
            {"Fn::GetAtt": ["KinesisFailureQueue", "Arn"]},
        )
        params = CFN["Parameters"]
        for prop, name, low, high in [
            ("MaximumRetryAttempts", "KinesisMaxRetryAttempts", 0, 100),
            ("MaximumRecordAgeInSeconds", "KinesisMaxRecordAgeSeconds", 60, 604800),
            ("BatchSize", "KinesisBatchSize", 1, 10000),
        ]:
            self.assertEqual(p[prop], {"Ref": name})
            self.assertEqual((params[name]["MinValue"], params[name]["MaxValue"]), (low, high))
        self.assertTrue(RES["KinesisFailureQueue"]["Properties"]["SqsManagedSseEnabled"])
        enc = RES["Stream"]["Properties"]["StreamEncryption"]
        self.assertEqual(enc["EncryptionType"], "KMS")

    def test_metric_names_are_those_the_sources_publish(self):
        published = {
            rust_const("agent/src/telemetry/points.rs", "HEARTBEAT"),
            rust_const("agent/src/telemetry/points.rs", "LOG_LINES"),
            rust_const("agent/src/telemetry/points.rs", "LOG_ERROR_LINES"),
            rust_const("sink/core/src/health.rs", "METRIC_SILENT_HOSTS"),
            rust_const("sink/core/src/health.rs", "METRIC_HEALTH_CHECKS"),
            rust_const("sink/core/src/health.rs", "METRIC_HOSTS_REPORTING"),
        }
        host_rs = (ROOT / "agent/src/collect/host.rs").read_text()
        text = json.dumps(of_type("AWS::CloudWatch::Alarm")) + json.dumps(RES["Dashboard"])
        used = set(re.findall(r'(?:\\"|")((?:agent|log|pipeline|cpu|memory)\.[a-z_.]+)', text))
        for name in used:
            self.assertTrue(name in published or f'"{name}"' in host_rs, name)
        self.assertTrue(published <= used, published - used)
        # The default OUTPOST_CLOUDWATCH_METRICS publishes every series the alarms and the
        # dashboard read, besides the totals and pipeline.* (always published).
        totals = rust_const_list("sink/src/backend/aws/cloudwatch/aggregate.rs", "FLEET_TOTALS")
        self.assertEqual(set(totals), {"log.lines", "log.error_lines", "agent.heartbeat"})
        selection = parse_selection(CFN["Parameters"]["CloudWatchMetrics"]["Default"])
        self.assertIsNotNone(selection, "the default is a selection, not *")
        for name in used - set(totals):
            if not name.startswith("pipeline."):
                self.assertIn(name, selection, f"{name} is used but not in CloudWatchMetrics")
        self.assertEqual(selection["cpu.utilization"], {(("cpu", "total"),)}, "cpu-high reads cpu=total")
        self.assertEqual(selection["memory.utilization"], None, "every dimension set")
        self.assertIn("cpu = 'total'", text)
        lambda_rs = (ROOT / "sink/src/front/lambda/health.rs").read_text()
        self.assertIn('HEALTH_CHECK_EVENT: (&str, &str) = ("outpost", "health-check")', lambda_rs)

    def test_alarm_set_and_missing_data(self):
        alarms = of_type("AWS::CloudWatch::Alarm")
        names = {}
        for logical, a in alarms.items():
            name = a["Properties"]["AlarmName"]["Fn::Sub"]
            self.assertTrue(name.startswith("${AWS::StackName}-"), logical)
            names.setdefault(name.split("-", 1)[1], []).append(a)
            self.assertEqual(a["Properties"]["AlarmActions"], [{"Ref": "AlarmTopic"}])
            self.assertEqual(a["Properties"]["OKActions"], [{"Ref": "AlarmTopic"}])
        self.assertEqual(set(names), set(EXPECTED_MISSING))
        for short, found in names.items():
            for a in found:
                self.assertEqual(a["Properties"]["TreatMissingData"], EXPECTED_MISSING[short], short)
        self.assertEqual(sorted(a.get("Condition") for a in names["cpu-high"]), ["IsFleet", "IsPerHost"])
        self.assertEqual(names["kinesis-iterator-age"][0]["Condition"], "HasKinesis")


# ----------------------------------------------------------------------------- intrinsics

NO_VALUE = object()


class Context:
    """Parameter values (defaults merged), conditions evaluated, and refs of deployed resources."""

    def __init__(self, params, refs, attrs):
        self.params = {
            k: str(v.get("Default", "")) for k, v in CFN["Parameters"].items()
        } | {k: str(v) for k, v in params.items()}
        self.refs = {"AWS::StackName": refs.pop("AWS::StackName"), "AWS::Region": REGION} | refs
        self.attrs = attrs
        self.conditions = {}
        for name in CFN["Conditions"]:
            self.condition(name)

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(CFN["Conditions"][name]))
        return self.conditions[name]

    def ref(self, name):
        return self.params[name] if name in self.params else self.refs[name]

    def resolve(self, node):
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else self.ref(arg)
            if key == "Fn::Sub":
                def sub(m):
                    name = m.group(1)
                    return self.attrs[name] if "." in name else self.ref(name)
                return re.sub(r"\$\{([^}!]+)\}", sub, arg)
            if key == "Fn::Join":
                return arg[0].join(self.resolve(arg[1]))
            if key == "Fn::FindInMap":
                m, k, a = (self.resolve(x) for x in arg)
                return CFN["Mappings"][m][k][a]
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                a, b = (str(self.resolve(x)) for x in arg)
                return a == b
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if key == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::GetAtt":
                return self.attrs[".".join(arg)]
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NO_VALUE}


class Dashboard(unittest.TestCase):
    def test_body_is_json_with_the_widgets_of_each_variant(self):
        body = RES["Dashboard"]["Properties"]["DashboardBody"]
        for scope in ("fleet", "per_host"):
            for kinesis in ("false", "true"):
                with self.subTest(scope=scope, kinesis=kinesis):
                    ctx = Context(
                        {"MetricsScope": scope, "EnableKinesis": kinesis},
                        {"AWS::StackName": "s", "SinkFunction": "fn"},
                        {},
                    )
                    widgets = json.loads(ctx.resolve(body))["widgets"]
                    titles = [w["properties"]["title"] for w in widgets]
                    self.assertEqual(
                        [t.split(" ")[0] for t in titles],
                        ["CPU,", "Memory", "Log", "Pipeline"] + (["Kinesis"] if kinesis == "true" else []),
                    )
                    text = json.dumps(widgets)
                    self.assertEqual('"p95"' in text, scope == "fleet")
                    self.assertEqual("SCHEMA" in text, scope == "per_host")
                    for metric in ["pipeline.hosts_reporting", "pipeline.silent_hosts", "agent.heartbeat", "Throttles"]:
                        self.assertIn(metric, text)


# ----------------------------------------------------------------------------- expectations

# docs/alarms.md, "CloudWatch alarms": how each alarm treats missing data.
EXPECTED_MISSING = {
    "cpu-high": "notBreaching",
    "memory-high": "notBreaching",
    "error-rate-high": "notBreaching",
    "heartbeat-missing": "breaching",
    "silent-hosts": "notBreaching",
    "health-check-missing": "breaching",
    "sink-errors": "notBreaching",
    "kinesis-iterator-age": "notBreaching",
}


def expected_alarms(p, function):
    """Alarm short name -> what DescribeAlarms must show, from docs/alarms.md."""
    ns = p["MetricsNamespace"]
    m, n = int(p["AlarmDatapoints"]), int(p["AlarmEvaluationPeriods"])
    hc = 60 * int(p["HealthCheckMinutes"])
    fleet = p["MetricsScope"] == "fleet"

    def single(name, stat, dims=(), namespace=ns, period=60):
        return {
            "Namespace": namespace,
            "MetricName": name,
            "Statistic": stat,
            "Period": period,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
        }

    def query(sql):
        return {"Metrics": [{"Expression": sql, "Period": 60, "ReturnData": True}]}

    out = {
        "cpu-high": (
            single("cpu.utilization", "Maximum", [("cpu", "total")])
            if fleet
            else query(
                f'SELECT MAX("cpu.utilization") FROM SCHEMA("{ns}", Host, cpu) WHERE cpu = \'total\''
            )
        )
        | {"Threshold": float(p["CpuThreshold"]), "ComparisonOperator": "GreaterThanThreshold", "M": m, "N": n},
        "memory-high": (
            single("memory.utilization", "Maximum")
            if fleet
            else query(f'SELECT MAX("memory.utilization") FROM SCHEMA("{ns}", Host)')
        )
        | {"Threshold": float(p["MemoryThreshold"]), "ComparisonOperator": "GreaterThanThreshold", "M": m, "N": n},
        "error-rate-high": {
            "Metrics": [
                {"Id": "lines", "MetricStat": {"Metric": {"Namespace": ns, "MetricName": "log.lines"}, "Period": 60, "Stat": "Sum"}, "ReturnData": False},
                {"Id": "errors", "MetricStat": {"Metric": {"Namespace": ns, "MetricName": "log.error_lines"}, "Period": 60, "Stat": "Sum"}, "ReturnData": False},
                {"Id": "rate", "Expression": "IF(lines > 0, 100 * errors / lines, 0)", "ReturnData": True},
            ],
            "Threshold": float(p["ErrorRateThreshold"]),
            "ComparisonOperator": "GreaterThanThreshold",
            "M": m,
            "N": n,
        },
        "heartbeat-missing": single("agent.heartbeat", "SampleCount")
        | {"Threshold": 1.0, "ComparisonOperator": "LessThanThreshold", "M": m, "N": n},
        "silent-hosts": single("pipeline.silent_hosts", "Maximum", period=hc)
        | {"Threshold": 1.0, "ComparisonOperator": "GreaterThanOrEqualToThreshold", "M": 1, "N": 1},
        "health-check-missing": single("pipeline.health_checks", "SampleCount", period=hc)
        | {"Threshold": 1.0, "ComparisonOperator": "LessThanThreshold", "M": 2, "N": 3},
        "sink-errors": single("Errors", "Sum", [("FunctionName", function)], "AWS/Lambda")
        | {"Threshold": 1.0, "ComparisonOperator": "GreaterThanOrEqualToThreshold", "M": 1, "N": 1},
    }
    if p["EnableKinesis"] == "true":
        out["kinesis-iterator-age"] = single("IteratorAge", "Maximum", [("FunctionName", function)], "AWS/Lambda") | {
            "Threshold": float(p["KinesisIteratorAgeThresholdMs"]),
            "ComparisonOperator": "GreaterThanThreshold",
            "M": m,
            "N": n,
        }
    for short, e in out.items():
        e["TreatMissingData"] = EXPECTED_MISSING[short]
    return out


# ----------------------------------------------------------------------------- moto

MOTO = {}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setUpModule():
    port = free_port()
    log = open(os.environ.get("OUTPOST_MOTO_LOG", os.devnull), "wb")
    proc = subprocess.Popen(
        ["moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    MOTO.update(proc=proc, log=log, url=f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{MOTO['url']}/moto-api/data.json", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                tearDownModule()
                raise RuntimeError("moto_server did not start")
            time.sleep(0.1)
    s3 = client("s3")
    s3.create_bucket(Bucket=ARTIFACTS)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n")
    s3.put_object(Bucket=ARTIFACTS, Key="bootstrap.zip", Body=zipped.getvalue())


def tearDownModule():
    proc = MOTO.get("proc")
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if "log" in MOTO:
        MOTO["log"].close()


def client(service):
    return boto3.client(service, endpoint_url=MOTO["url"], region_name=REGION)


# Types moto's CloudFormation does not implement (it logs "No Moto CloudFormation support for
# TYPE" and creates nothing; AWS::S3::BucketPolicy and AWS::SNS::Subscription are skipped so
# too): checked offline above, and the alarms again below. A Ref or GetAtt of one in the
# Outputs fails the stack, so the copy sent to moto drops these and puts a stand-in where the
# template reads them. moto also keeps an Fn::If's AWS::NoValue in a policy's statement list
# (then rejects the policy), so the copy has its Fn::Ifs resolved for the parameters deployed.
MOTO_SKIPS = {"AWS::Lambda::Url", "AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard"}
URL_STAND_IN = "https://stand-in.lambda-url.us-east-1.on.aws/"


def for_moto(params):
    skipped = {k for k, v in RES.items() if v["Type"] in MOTO_SKIPS}
    ctx = Context(params, {"AWS::StackName": "unused"}, {})

    def strip(node):
        if isinstance(node, list):
            return [v for v in (strip(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if "Fn::If" in node:
            cond, yes, no = node["Fn::If"]
            return strip(yes if ctx.condition(cond) else no)
        if node == {"Ref": "AWS::NoValue"}:
            return NO_VALUE
        if node.get("Ref") in skipped:
            return f"stand-in-{node['Ref']}"
        if "Fn::GetAtt" in node and node["Fn::GetAtt"][0] in skipped:
            return URL_STAND_IN
        if isinstance(node.get("Fn::Sub"), str) and any(f"${{{k}." in node["Fn::Sub"] for k in skipped):
            text = node["Fn::Sub"]
            for k in skipped:
                text = re.sub(rf"\$\{{{k}\.[A-Za-z]+\}}", URL_STAND_IN, text)
            return {"Fn::Sub": text}
        return {k: v for k, v in ((k, strip(v)) for k, v in node.items()) if v is not NO_VALUE}

    template = {k: v for k, v in CFN.items() if k != "Resources"}
    template["Resources"] = {k: v for k, v in RES.items() if k not in skipped}
    return strip(template)


def deploy(stack, params):
    cfn = client("cloudformation")
    cfn.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(for_moto(params)),
        Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    deadline = time.monotonic() + 60
    while True:
        desc = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        if not desc["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            return desc
        time.sleep(0.2)


class Deployed:
    """A deployment to moto and its alarms (mixed into one TestCase per parameter set)."""

    STACK = ""
    PARAMS = {}

    @classmethod
    def setUpClass(cls):
        cls.desc = deploy(cls.STACK, cls.PARAMS)
        cls.outputs = {o["OutputKey"]: o["OutputValue"] for o in cls.desc.get("Outputs", [])}

    def test_stack_completes_and_its_resources_exist(self):
        self.assertEqual(self.desc["StackStatus"], "CREATE_COMPLETE", self.desc.get("StackStatusReason"))
        client("s3").head_bucket(Bucket=self.outputs["BucketName"])
        table = client("dynamodb").describe_table(TableName=self.outputs["TableName"])["Table"]
        self.assertEqual([k["AttributeName"] for k in table["KeySchema"]], ["pk", "ts"])
        self.assertEqual(table["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST")
        self.assertTrue(self.outputs["TopicArn"].startswith("arn:aws:sns:"))
        self.assertIn(self.outputs["FunctionName"], self.outputs["FunctionArn"])
        kinesis = self.PARAMS.get("EnableKinesis") == "true"
        self.assertEqual("StreamName" in self.outputs, kinesis)
        if kinesis:
            s = client("kinesis").describe_stream_summary(StreamName=self.outputs["StreamName"])
            self.assertEqual(s["StreamDescriptionSummary"]["StreamARN"], self.outputs["StreamArn"])
            mappings = client("lambda").list_event_source_mappings(FunctionName=self.outputs["FunctionName"])
            self.assertEqual(len(mappings["EventSourceMappings"]), 1)
        iam = client("iam")
        pol = iam.get_policy(PolicyArn=self.outputs["AgentPolicyArn"])["Policy"]
        doc = iam.get_policy_version(PolicyArn=pol["Arn"], VersionId=pol["DefaultVersionId"])
        doc = doc["PolicyVersion"]["Document"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        sids = sorted(s["Sid"] for s in doc["Statement"])
        expected = ["InvokeFunctionUrl", "InvokeThroughFunctionUrl"] + (["PutRecords"] if kinesis else [])
        self.assertEqual(sids, sorted(expected))
        for st in doc["Statement"]:
            if st["Sid"] == "PutRecords":
                self.assertEqual(st["Resource"], self.outputs["StreamArn"])
            else:
                self.assertEqual(st["Resource"], self.outputs["FunctionArn"])

    def test_function_environment(self):
        conf = client("lambda").get_function_configuration(FunctionName=self.outputs["FunctionName"])
        env = conf["Environment"]["Variables"]
        default = CFN["Parameters"]["CloudWatchMetrics"]["Default"]
        self.assertEqual(env["OUTPOST_CLOUDWATCH_METRICS"], self.PARAMS.get("CloudWatchMetrics", default))
        self.assertEqual(env["OUTPOST_CLOUDWATCH_SCOPE"], self.PARAMS.get("MetricsScope", "fleet"))

    def test_alarms_in_cloudwatch(self):
        ctx = Context(
            dict(self.PARAMS),
            {
                "AWS::StackName": self.STACK,
                "AlarmTopic": self.outputs["TopicArn"],
                "SinkFunction": self.outputs["FunctionName"],
            },
            {},
        )
        cw = client("cloudwatch")
        created = []
        for logical, a in of_type("AWS::CloudWatch::Alarm").items():
            if "Condition" in a and not ctx.condition(a["Condition"]):
                continue
            props = ctx.resolve(a["Properties"])
            for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
                if key in props:
                    props[key] = int(props[key])
            props["Threshold"] = float(props["Threshold"])
            for m in props.get("Metrics", []):
                if "Period" in m:
                    m["Period"] = int(m["Period"])
                if "MetricStat" in m:
                    m["MetricStat"]["Period"] = int(m["MetricStat"]["Period"])
            cw.put_metric_alarm(**props)
            created.append(props["AlarmName"])
        self.assertEqual(len(created), len(set(created)), "two alarms share a name")
        found = cw.describe_alarms(AlarmNamePrefix=f"{self.STACK}-")["MetricAlarms"]
        got = {a["AlarmName"][len(self.STACK) + 1 :]: a for a in found}
        want = expected_alarms(ctx.params, self.outputs["FunctionName"])
        self.assertEqual(sorted(got), sorted(want))
        topic = [self.outputs["TopicArn"]]
        for short, e in want.items():
            a = got[short]
            with self.subTest(alarm=short):
                self.assertEqual(a["AlarmActions"], topic)
                self.assertEqual(a["OKActions"], topic)
                self.assertEqual(a["TreatMissingData"], e["TreatMissingData"])
                self.assertEqual(a["Threshold"], e["Threshold"])
                self.assertEqual(a["ComparisonOperator"], e["ComparisonOperator"])
                self.assertEqual((a["DatapointsToAlarm"], a["EvaluationPeriods"]), (e["M"], e["N"]))
                if "Metrics" in e:
                    self.assertNotIn("MetricName", a)
                    got_metrics = [
                        {k: v for k, v in m.items() if k != "Label"} for m in a["Metrics"]
                    ]
                    for m in got_metrics:
                        metric = m.get("MetricStat", {}).get("Metric", {})
                        if metric.get("Dimensions") == []:
                            del metric["Dimensions"]
                    for gm, em in zip(got_metrics, e["Metrics"], strict=True):
                        for k, v in em.items():
                            self.assertEqual(gm.get(k), v, f"{short}: {k}")
                else:
                    for k in ("Namespace", "MetricName", "Statistic", "Period"):
                        self.assertEqual(a[k], e[k], f"{short}: {k}")
                    self.assertEqual(a.get("Dimensions", []), e["Dimensions"])


class FleetWithoutKinesis(Deployed, unittest.TestCase):
    STACK = "outpost-fleet"
    PARAMS = {}


class PerHostWithKinesis(Deployed, unittest.TestCase):
    STACK = "outpost-perhost"
    PARAMS = {
        "MetricsScope": "per_host",
        "CloudWatchMetrics": "*",
        "EnableKinesis": "true",
        "KinesisStreamMode": "PROVISIONED",
        "KinesisShardCount": "2",
        "MetricsNamespace": "Outpost/test",
        "AlarmEmail": "ops@example.com",
        "HealthCheckMinutes": "1",
        "CpuThreshold": "90",
        "MemoryThreshold": "70",
        "ErrorRateThreshold": "2.5",
        "AlarmDatapoints": "2",
        "AlarmEvaluationPeriods": "4",
        "KinesisIteratorAgeThresholdMs": "30000",
    }


if __name__ == "__main__":
    unittest.main(verbosity=2)
