#!/usr/bin/env python3
"""Writes the masking corpus (secrets.txt, lookalikes.txt): synthetic secrets and must-not-mask
look-alikes. Every value is random (fixed seed); none is a live credential. Rerun to regenerate:
    python3 crates/warden-gateway/tests/data/generate_corpus.py

secrets.txt: blocks separated by a blank line; a block's first line is `# kind: <kind>`, its second
line is where the secret starts (the line a finding must be reported on); a block may span lines
(PEM keys). lookalikes.txt: `# kind: <kind>` headers, then one must-not-mask case per line.
"""
import base64, hashlib, os, random, string, uuid

rng = random.Random(20261130)
UP, LO, DI = string.ascii_uppercase, string.ascii_lowercase, string.digits
AN = UP + LO + DI
HEX = "0123456789abcdef"
B64 = AN + "+/"
URLSAFE = AN + "-_"

def r(alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))

def pem(kind, lines=12, width=64):
    body = "\n".join(r(B64, width) for _ in range(lines)) + "\n" + r(B64, 20) + "=="
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"

def jwt():
    head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    payload = base64.urlsafe_b64encode(('{"sub":"%d","name":"%s","iat":%d}' % (rng.randint(1, 10**6), r(LO, 8), rng.randint(1.5e9, 1.8e9))).encode()).decode().rstrip("=")
    return f"{head}.{payload}.{r(URLSAFE, 43)}"

def password():
    return r(UP, 2) + r(LO, 4) + r(DI, 3) + rng.choice("!#%^*") + r(AN, 6)

CONTEXTS = [
    "{name}={v}",
    'export {name}="{v}"',
    '{lname}: "{v}"',
    '    "{lname}": "{v}",',
    '{lname} = "{v}"',
    "const {lname} = '{v}';",
    "{name}: {v}",
]

def ctx(i, name, v):
    return CONTEXTS[i % len(CONTEXTS)].format(name=name, lname=name.lower(), v=v)

KINDS = {
    "aws-access-key-id": ("AWS_ACCESS_KEY_ID", lambda: rng.choice(["AKIA", "ASIA"]) + r(UP + "234567", 16)),
    "aws-secret-access-key": ("AWS_SECRET_ACCESS_KEY", lambda: r(AN + "/+", 40)),
    "github-token": ("GITHUB_TOKEN", lambda: rng.choice(["ghp_", "gho_", "ghs_"]) + r(AN, 36)),
    "github-fine-grained-token": ("GH_PAT", lambda: "github_pat_" + r(AN, 22) + "_" + r(AN, 59)),
    "gitlab-token": ("GITLAB_TOKEN", lambda: "glpat-" + r(URLSAFE, 20)),
    "slack-token": ("SLACK_BOT_TOKEN", lambda: "xoxb-" + r(DI, 12) + "-" + r(DI, 13) + "-" + r(AN, 24)),
    "slack-webhook": ("SLACK_WEBHOOK_URL", lambda: f"https://hooks.slack.com/services/T{r(UP + DI, 8)}/B{r(UP + DI, 10)}/{r(AN, 24)}"),
    "stripe-key": ("STRIPE_SECRET_KEY", lambda: rng.choice(["sk_live_", "rk_live_", "sk_test_"]) + r(AN, 24)),
    "openai-key": ("OPENAI_API_KEY", lambda: "sk-proj-" + r(URLSAFE, 64) + "T3BlbkFJ" + r(URLSAFE, 64)),
    "anthropic-key": ("ANTHROPIC_API_KEY", lambda: "sk-ant-api03-" + r(URLSAFE, 93) + "AA"),
    "google-api-key": ("GOOGLE_API_KEY", lambda: "AIza" + r(URLSAFE, 35)),
    "google-oauth-secret": ("GOOGLE_CLIENT_SECRET", lambda: "GOCSPX-" + r(URLSAFE, 28)),
    "jwt": ("SESSION_JWT", jwt),
    "npm-token": ("NPM_TOKEN", lambda: "npm_" + r(AN, 36)),
    "pypi-token": ("PYPI_TOKEN", lambda: "pypi-AgEIcHlwaS5vcmc" + r(URLSAFE, 70)),
    "docker-hub-token": ("DOCKER_TOKEN", lambda: "dckr_pat_" + r(URLSAFE, 27)),
    "hashicorp-vault-token": ("VAULT_TOKEN", lambda: "hvs." + r(URLSAFE, 90)),
    "terraform-cloud-token": ("TFC_TOKEN", lambda: r(AN, 14) + ".atlasv1." + r(AN, 67)),
    "shopify-token": ("SHOPIFY_ACCESS_TOKEN", lambda: "shpat_" + r(HEX, 32)),
    "sendgrid-key": ("SENDGRID_API_KEY", lambda: "SG." + r(URLSAFE, 22) + "." + r(URLSAFE, 43)),
    "digitalocean-token": ("DIGITALOCEAN_TOKEN", lambda: "dop_v1_" + r(HEX, 64)),
    "huggingface-token": ("HF_TOKEN", lambda: "hf_" + r(AN, 34)),
    "databricks-token": ("DATABRICKS_TOKEN", lambda: "dapi" + r(HEX, 32)),
    "grafana-token": ("GRAFANA_SA_TOKEN", lambda: "glsa_" + r(AN, 32) + "_" + r(HEX, 8)),
    "new-relic-key": ("NEW_RELIC_API_KEY", lambda: "NRAK-" + r(UP + DI, 27)),
    "postman-key": ("POSTMAN_API_KEY", lambda: "PMAK-" + r(HEX, 24) + "-" + r(HEX, 34)),
    "age-secret-key": ("AGE_KEY", lambda: "AGE-SECRET-KEY-1" + r("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)),
    "atlassian-token": ("JIRA_API_TOKEN", lambda: "ATATT3xFfGF0" + r(URLSAFE, 170) + "=" + r(HEX, 8).upper()),
    "linear-key": ("LINEAR_API_KEY", lambda: "lin_api_" + r(AN, 40)),
    "doppler-token": ("DOPPLER_TOKEN", lambda: "dp.pt." + r(AN, 43)),
    "planetscale-token": ("PLANETSCALE_PASSWORD", lambda: "pscale_pw_" + r(URLSAFE, 43)),
    "supabase-token": ("SUPABASE_ACCESS_TOKEN", lambda: "sbp_" + r(HEX, 40)),
    "telegram-bot-token": ("TELEGRAM_BOT_TOKEN", lambda: str(rng.randint(10**8, 10**10 - 1)) + ":AA" + r(URLSAFE, 33)),
    "groq-key": ("GROQ_API_KEY", lambda: "gsk_" + r(AN, 52)),
    "replicate-token": ("REPLICATE_API_TOKEN", lambda: "r8_" + r(AN, 37)),
    "square-token": ("SQUARE_ACCESS_TOKEN", lambda: "EAAA" + r(URLSAFE, 60)),
    "alibaba-access-key": ("ALIBABA_ACCESS_KEY_ID", lambda: "LTAI" + r(AN, 20)),
    "huggingface-token-2": None,
}
del KINDS["huggingface-token-2"]

blocks = []
def add(kind, text):
    blocks.append(f"# kind: {kind}\n{text}")

for kind, (name, make) in KINDS.items():
    for i in range(5):
        add(kind, ctx(i + len(blocks), name, make()))

# Secrets that need their context (the rule is found by a keyword next to it).
for i in range(5):
    add("twilio-key", f'twilio_client = Client("AC{r(HEX, 32)}", auth)' if i % 2 else f"TWILIO_API_KEY=SK{r(HEX, 32)}")
    add("mailgun-key", f'MAILGUN_API_KEY="key-{r(HEX, 32)}"')
    add("sentry-dsn", f'SENTRY_DSN="https://{r(HEX, 32)}@o{rng.randint(10**5, 10**6)}.ingest.sentry.io/{rng.randint(10**6, 10**7)}"')
    add("discord-webhook", f"DISCORD_WEBHOOK=https://discord.com/api/webhooks/{r(DI, 18)}/{r(URLSAFE, 68)}")
    add("azure-storage-key", f"DefaultEndpointsProtocol=https;AccountName=acct{r(LO, 6)};AccountKey={r(B64, 86)}==;EndpointSuffix=core.windows.net")
    add("url-password", rng.choice([
        f'DATABASE_URL="postgres://app_{r(LO, 4)}:{password()}@db-{r(LO, 3)}.internal:5432/orders"',
        f"redis_url: redis://default:{password()}@cache.{r(LO, 5)}.net:6379/0",
        f"git clone https://deploy:{r(AN, 20)}@git.{r(LO, 6)}.com/team/repo.git",
        f'amqp_url = "amqps://svc:{password()}@mq.{r(LO, 5)}.io/vhost"',
        f"mongodb+srv://admin:{password()}@cluster0.{r(LO, 5)}.mongodb.net/?retryWrites=true",
    ]))
    add("connection-string-password", f"Server=tcp:sql-{r(LO, 5)}.database.windows.net,1433;Database=app;User Id=svc;Password={password()};Encrypt=True;")
    add("authorization-header", rng.choice([
        f"curl -H 'Authorization: Bearer {r(AN, 40)}' https://api.{r(LO, 6)}.com/v1/items",
        f'headers = {{"Authorization": "Bearer {r(URLSAFE, 48)}"}}',
        f"Authorization: Basic {base64.b64encode((r(LO, 6) + ':' + password()).encode()).decode()}",
    ]))
    add("generic-secret", rng.choice([
        f'DB_PASSWORD = "{password()}"',
        f"api_key: {r(AN, 32)}",
        f'client_secret="{r(URLSAFE, 40)}"',
        f"  password: '{password()}'",
        f'config.secret_key = "{r(AN + "!@#", 50)}"',
        f"SIGNING_KEY={r(HEX, 64)}",
        f'"encryption_key": "{r(B64, 44)}",',
    ]))
    add("private-key", pem(rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]), lines=rng.randint(3, 10)))
    # A PEM key inside a JSON string (a service-account file): one line with `\n` escapes.
    key = pem("PRIVATE KEY", lines=4).replace("\n", "\\n")
    add("private-key", f'  "private_key": "{key}",')

with open(os.path.join(os.path.dirname(__file__), "secrets.txt"), "w") as f:
    f.write("\n\n".join(blocks) + "\n")

# Must-not-mask look-alikes.
neg = {}
def n(kind, line):
    lines = neg.setdefault(kind, [])
    if line not in lines:
        lines.append(line)

for _ in range(20):
    n("uuid", f'id = "{uuid.UUID(int=rng.getrandbits(128), version=4)}"')
    n("uuid-in-json", f'{{"request_id": "{uuid.UUID(int=rng.getrandbits(128), version=4)}", "token_count": {rng.randint(1, 9000)}}}')
    sha = hashlib.sha1(r(AN, 20).encode()).hexdigest()
    n("git-hash", rng.choice([f"commit {sha}", f"Merge: {sha[:7]} {sha[7:14]}", f'rev = "{sha}"', f"git checkout {sha}"]))
    n("lockfile-integrity", f'      "integrity": "sha512-{base64.b64encode(os.urandom(0) + rng.randbytes(64)).decode()}",')
    n("cargo-lock-checksum", f'checksum = "{hashlib.sha256(rng.randbytes(16)).hexdigest()}"')
    n("go-sum", f"github.com/{r(LO, 6)}/{r(LO, 5)} v1.{rng.randint(0, 20)}.{rng.randint(0, 9)} h1:{base64.b64encode(rng.randbytes(32)).decode()}")
    n("base64-image", f'<img src="data:image/png;base64,{base64.b64encode(rng.randbytes(rng.randint(60, 300))).decode()}">')
    n("docker-digest", f"FROM node:22-alpine@sha256:{hashlib.sha256(rng.randbytes(8)).hexdigest()}")
    n("env-reference", rng.choice([
        'password = os.environ["DB_PASSWORD"]',
        "token: ${{ secrets.GITHUB_TOKEN }}",
        "AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY}",
        "const apiKey = process.env.OPENAI_API_KEY;",
        'api_key = os.getenv("ANTHROPIC_API_KEY")',
        "password: {{ .Values.postgres.password }}",
        'secret_key = settings.SECRET_KEY',
        "export GITHUB_TOKEN=$(gh auth token)",
        'url = f"postgres://{user}:{password}@{host}:5432/{db}"',
        'SQLALCHEMY_URL = "mysql://%(user)s:%(password)s@%(host)s/app"',
        "DATABASE_URL=postgres://${DB_USER}:${DB_PASSWORD}@db:5432/app",
        "amqp://guest:<password>@localhost:5672/",
    ]))
    n("code-identifier", rng.choice([
        "String password = user.getPassword();",
        'token_type = "Bearer"',
        "def refresh_token(self, session): ...",
        '"tokenizer": "cl100k_base",',
        "secret_name: my-app-secret",
        "passwordField.setText(\"\");",
        'const TOKEN_KEY = "auth_token";',
        "if api_key is None: raise MissingKey()",
        "private_key_path = Path.home() / '.ssh' / 'id_ed25519'",
        "max_tokens: 4096",
    ]))
    n("placeholder-value", rng.choice([
        'api_key = "YOUR_API_KEY_HERE"',
        "password: <password>",
        'OPENAI_API_KEY="sk-..."',
        "password = '********'",
        "token: xxxxxxxxxxxxxxxxxxxx",
        "DB_PASSWORD=changeme",
        'secret: "REPLACE_ME"',
    ]))
    n("url-without-credentials", rng.choice([
        f"https://github.com/{r(LO, 6)}/{r(LO, 8)}/blob/main/src/lib.rs#L{rng.randint(1, 400)}",
        "postgres://localhost:5432/orders_dev",
        f"git@github.com:{r(LO, 6)}/{r(LO, 6)}.git",
        f"ssh deploy@{r(LO, 6)}.example.org",
        "http://user@proxy.local:3128/",
        f"https://cdn.jsdelivr.net/npm/react@18.{rng.randint(0, 3)}.0/umd/react.production.min.js",
    ]))
    n("hex-and-numbers", rng.choice([
        f"color: #{r(HEX, 6)};",
        f"version = \"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}\"",
        f"timestamp: {rng.randint(1.5e12, 1.8e12)}",
        f"mac = {':'.join(r(HEX, 2) for _ in range(6))}",
        f"ipv6 = 2001:db8:{r(HEX, 4)}::{r(HEX, 4)}",
        f"const HASH = 0x{r(HEX, 16)};",
    ]))
    n("public-key", rng.choice([
        f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{r(B64, 43)} dev@laptop",
        f"pk_live_{r(AN, 24)}",
        "-----BEGIN PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----",
    ]))
    n("prose", rng.choice([
        "Rotate the token every 90 days; the secret manager does it for you.",
        "The password must be at least 12 characters long.",
        "Use an API key from the settings page, never a personal access token.",
        "AKIA is the prefix of long-term AWS access key ids.",
        "See the jwt.io debugger for tokens starting with eyJ.",
        "ghp_ tokens are classic GitHub personal access tokens.",
    ]))

with open(os.path.join(os.path.dirname(__file__), "lookalikes.txt"), "w") as f:
    for kind, lines in neg.items():
        f.write(f"# kind: {kind}\n")
        f.write("\n".join(lines) + "\n")
