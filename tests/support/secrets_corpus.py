"""Secrets as they turn up in incident evidence: log lines, events, env dumps, JSON, diffs.

The secrets are generated from a seed rather than written out, so that no realistic-looking
credential sits in the repository for secret scanners (and readers) to trip over.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass, field

UPPER = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


def fake(alphabet: str, n: int, seed: str) -> str:
    rnd = random.Random(seed)
    return "".join(rnd.choice(alphabet) for _ in range(n))


def pem(label: str, seed: str, lines: int = 6) -> tuple[str, list[str]]:
    body = [fake(B64, 64, f"{seed}{i}") for i in range(lines)]
    block = "\n".join(
        [f"-----BEGIN {label}-----", *body, f"{fake(B64, 20, seed)}==", f"-----END {label}-----"]
    )
    return block, body


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    secrets: list[str]  # none of these may appear in the output
    kinds: list[str]  # one placeholder kind per redaction, in any order
    keep: list[str] = field(default_factory=list)  # context that must survive


def _jwt(seed: str) -> str:
    return (
        "eyJhbGciOiJSUzI1NiIsImtpZCI6Ik"
        + fake(URLSAFE, 20, seed + "h")
        + ".eyJpc3MiOiJrdWJlcm5ldGVzL3Nl"
        + fake(URLSAFE, 120, seed + "p")
        + "."
        + fake(URLSAFE, 86, seed + "s")
    )


def cases() -> list[Case]:
    c: list[Case] = []

    def add(
        name: str, text: str, secrets: list[str], kinds: list[str], keep: list[str] | None = None
    ) -> None:
        c.append(Case(name, text, secrets, kinds, keep or []))

    # --- cloud ------------------------------------------------------------------------------
    akia = "AKIA" + fake(UPPER, 16, "akia")
    add(
        "aws access key id in env dump",
        f"AWS_REGION=eu-west-1\nAWS_ACCESS_KEY_ID={akia}\nHOME=/root",
        [akia],
        ["aws_access_key"],
        ["AWS_REGION=eu-west-1", "HOME=/root"],
    )
    asia = "ASIA" + fake(UPPER, 16, "asia")
    sts_secret = fake(B64, 40, "sts-secret")
    sts_token = "FwoGZXIvYXdzE" + fake(B64, 300, "sts-token")
    add(
        "aws sts credentials json",
        f'{{"Credentials": {{"AccessKeyId": "{asia}", "SecretAccessKey": "{sts_secret}", '
        f'"SessionToken": "{sts_token}", "Expiration": "2024-05-01T13:00:00Z"}}}}',
        [asia, sts_secret, sts_token],
        ["aws_access_key", "aws_secret_key", "token"],
        ['"Expiration": "2024-05-01T13:00:00Z"'],
    )
    aws_secret = fake(B64, 40, "aws-secret")
    add(
        "aws secret key in credentials file",
        f"[default]\naws_access_key_id = {akia}\naws_secret_access_key = {aws_secret}\n",
        [akia, aws_secret],
        ["aws_access_key", "aws_secret_key"],
        ["[default]"],
    )
    key_block, key_body = pem("PRIVATE KEY", "gcp")
    key_id = fake(HEX, 40, "gcp-key-id")
    sa = {
        "type": "service_account",
        "project_id": "shop-prod",
        "private_key_id": key_id,
        "private_key": key_block + "\n",
        "client_email": "checkout@shop-prod.iam.gserviceaccount.com",
    }

    add(
        "gcp service account json",
        "loaded credentials " + json.dumps(sa),
        [key_id, *key_body, "checkout@shop-prod.iam.gserviceaccount.com"],
        ["private_key", "private_key", "email"],
        ['"project_id": "shop-prod"', '"type": "service_account"'],
    )
    aiza = "AIza" + fake(URLSAFE, 35, "aiza")
    add(
        "gcp api key in url",
        f"GET https://maps.googleapis.com/maps/api/geocode/json?address=Berlin&key={aiza} 403",
        [aiza],
        ["gcp_api_key"],
        ["address=Berlin", " 403"],
    )
    ya29 = "ya29." + fake(URLSAFE, 150, "ya29")
    add(
        "google oauth access token",
        f'level=debug msg="calling GCS" access={ya29} bucket=shop-assets',
        [ya29[5:]],
        ["google_oauth_token"],
        ["bucket=shop-assets"],
    )
    gocspx = "GOCSPX-" + fake(URLSAFE, 28, "gocspx")
    add(
        "google oauth client secret",
        f"oauth2-proxy --client-id=1234.apps.googleusercontent.com --client-secret={gocspx}",
        [gocspx],
        ["google_client_secret"],
        ["--client-id=1234.apps.googleusercontent.com"],
    )
    account_key = fake(B64, 86, "azure-account") + "=="
    add(
        "azure storage connection string",
        "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=shopassets;"
        f"AccountKey={account_key};EndpointSuffix=core.windows.net",
        [account_key[:86]],
        ["azure_storage_key"],
        ["AccountName=shopassets", "EndpointSuffix=core.windows.net"],
    )
    sig = fake(ALNUM, 43, "sas") + "%3D"
    add(
        "azure sas url",
        "upload failed: PUT https://shopassets.blob.core.windows.net/exports/orders.csv?"
        f"sv=2022-11-02&ss=b&srt=co&sp=rwdlac&se=2024-06-01T00:00:00Z&sig={sig} 403",
        [sig],
        ["azure_sas"],
        ["sp=rwdlac", "se=2024-06-01T00:00:00Z"],
    )
    sb_key = fake(B64, 43, "servicebus") + "="
    add(
        "azure service bus connection string",
        "Endpoint=sb://shop-bus.servicebus.windows.net/;SharedAccessKeyName="
        f"RootManageSharedAccessKey;SharedAccessKey={sb_key}",
        [sb_key[:43]],
        ["azure_shared_access_key"],
        ["SharedAccessKeyName=RootManageSharedAccessKey"],
    )
    azsecret = fake(ALNUM, 3, "azs1") + "8Q~" + fake(ALNUM + "_~.-", 34, "azs2")
    add(
        "azure ad client secret",
        f'{{"tenantId": "contoso", "clientId": "app-checkout", "credential": "{azsecret}"}}',
        [azsecret],
        ["azure_client_secret"],
        ['"clientId": "app-checkout"'],
    )
    # --- source hosting, chat, payments -----------------------------------------------------
    ghs = "ghs_" + fake(ALNUM, 36, "ghs")
    add(
        "github app token in git remote url",
        f"fatal: unable to access 'https://x-access-token:{ghs}@github.com/acme/shop.git/': 403",
        [ghs],
        ["github_token"],
        ["@github.com/acme/shop.git"],
    )
    ghp = "ghp_" + fake(ALNUM, 36, "ghp")
    add(
        "github personal token in header",
        f"> Authorization: token {ghp}\n> Accept: application/vnd.github+json",
        [ghp],
        ["github_token"],
        ["Accept: application/vnd.github+json"],
    )
    gho = "gho_" + fake(ALNUM, 36, "gho")
    add(
        "github oauth token in json",
        f'{{"access_token": "{gho}", "scope": "repo"}}',
        [gho],
        ["github_token"],
        ['"scope": "repo"'],
    )
    gpat = "github_pat_" + fake(ALNUM, 22, "gpat1") + "_" + fake(ALNUM, 59, "gpat2")
    add("github fine-grained token", f"export GH_TOKEN={gpat}", [gpat], ["github_token"])
    glpat = "glpat-" + fake(URLSAFE, 20, "glpat")
    add(
        "gitlab personal token",
        f'curl --header "PRIVATE-TOKEN: {glpat}" https://gitlab.example.com/api/v4/projects',
        [glpat],
        ["gitlab_token"],
        ["https://gitlab.example.com/api/v4/projects"],
    )
    gldt = "gldt-" + fake(URLSAFE, 20, "gldt")
    add("gitlab deploy token", f"registry login -u deploy -p {gldt}", [gldt], ["gitlab_token"])
    xoxb = f"xoxb-{fake(string.digits, 12, 'x1')}-{fake(string.digits, 13, 'x2')}-" + fake(
        ALNUM, 24, "x3"
    )
    add(
        "slack bot token",
        f"slack_sdk.errors: token={xoxb} error=not_in_channel",
        [xoxb],
        ["slack_token"],
        ["error=not_in_channel"],
    )
    xoxp = f"xoxp-{fake(string.digits, 12, 'p1')}-{fake(string.digits, 12, 'p2')}-" + fake(
        HEX, 32, "p3"
    )
    add("slack user token", f"SLACK_USER_TOKEN={xoxp}", [xoxp], ["slack_token"])
    xapp = f"xapp-1-A{fake(UPPER, 10, 'a1')}-{fake(string.digits, 13, 'a2')}-" + fake(HEX, 64, "a3")
    add("slack app token", f"socket mode: connecting with {xapp}", [xapp], ["slack_token"])
    hook = f"T{fake(UPPER, 8, 'h1')}/B{fake(UPPER, 10, 'h2')}/{fake(ALNUM, 24, 'h3')}"
    add(
        "slack incoming webhook",
        f"POST https://hooks.slack.com/services/{hook} 404 no_service",
        [hook],
        ["slack_webhook"],
        ["https://hooks.slack.com/services/", "404 no_service"],
    )
    discord = fake(URLSAFE, 68, "discord")
    add(
        "discord webhook",
        f"notify: https://discord.com/api/webhooks/112233445566778899/{discord}",
        [discord],
        ["discord_webhook"],
    )
    sk_live = "sk_live_" + fake(ALNUM, 99, "stripe")
    add(
        "stripe secret key",
        f'stripe.error.AuthenticationError: Invalid API Key provided: "{sk_live}"',
        [sk_live],
        ["stripe_key"],
        ["stripe.error.AuthenticationError"],
    )
    rk_live = "rk_live_" + fake(ALNUM, 99, "stripe-rk")
    add("stripe restricted key", f"STRIPE_KEY={rk_live}", [rk_live], ["stripe_key"])
    whsec = "whsec_" + fake(ALNUM, 32, "whsec")
    add(
        "stripe webhook secret",
        f"webhook signing secret {whsec} loaded",
        [whsec],
        ["stripe_webhook_secret"],
    )
    twilio_key = "SK" + fake(HEX, 32, "twilio-sk")
    twilio_token = fake(HEX, 32, "twilio-auth")
    add(
        "twilio api key and auth token",
        f"TWILIO_API_KEY={twilio_key}\nTWILIO_AUTH_TOKEN={twilio_token}\nTWILIO_REGION=ie1",
        [twilio_key, twilio_token],
        ["twilio_api_key", "token"],
        ["TWILIO_REGION=ie1"],
    )
    sendgrid = f"SG.{fake(URLSAFE, 22, 'sg1')}.{fake(URLSAFE, 43, 'sg2')}"
    add("sendgrid key", f"mailer: using SendGrid key {sendgrid}", [sendgrid], ["sendgrid_key"])
    npm = "npm_" + fake(ALNUM, 36, "npm")
    add(
        "npm token in .npmrc",
        f"//registry.npmjs.org/:_authToken={npm}\nregistry=https://registry.npmjs.org/",
        [npm],
        ["npm_token"],
        ["registry=https://registry.npmjs.org/"],
    )
    pypi = "pypi-AgEIcHlwaS5vcmc" + fake(URLSAFE, 150, "pypi")
    add(
        "pypi token",
        f"TWINE_USERNAME=__token__ TWINE_PASSWORD={pypi}",
        [pypi],
        ["pypi_token"],
        ["TWINE_USERNAME=__token__"],
    )
    hrku = "HRKU-AA" + fake(URLSAFE, 58, "heroku")
    add("heroku api key", f"heroku: authenticating with {hrku}", [hrku], ["heroku_api_key"])
    heroku_uuid = "0f6d3c1a-9b8e-4c7d-a6f5-e4d3c2b1a098"
    add(
        "heroku legacy api key (uuid under a secret key name)",
        f"HEROKU_API_KEY={heroku_uuid}",
        [heroku_uuid],
        ["api_key"],
    )
    dop = "dop_v1_" + fake(HEX, 64, "do")
    add("digitalocean token", f"doctl auth init -t {dop}", [dop], ["digitalocean_token"])
    # --- AI providers -----------------------------------------------------------------------
    openai_proj = "sk-proj-" + fake(URLSAFE, 156, "openai-proj")
    add(
        "openai project key",
        f"openai.AuthenticationError: Incorrect API key provided: {openai_proj}.",
        [openai_proj],
        ["openai_key"],
        ["openai.AuthenticationError"],
    )
    openai_legacy = "sk-" + fake(ALNUM, 48, "openai-legacy")
    add("openai legacy key", f'OPENAI_API_KEY="{openai_legacy}"', [openai_legacy], ["openai_key"])
    anthropic = "sk-ant-api03-" + fake(URLSAFE, 95, "anthropic") + "AA"
    add("anthropic key", f"x-api-key: {anthropic}", [anthropic], ["anthropic_key"])
    hf = "hf_" + fake(ALNUM, 34, "hf")
    add(
        "huggingface token",
        f"HF_TOKEN={hf} python serve.py",
        [hf],
        ["huggingface_token"],
        ["python serve.py"],
    )
    # --- observability, CI, infra -----------------------------------------------------------
    dd_api = fake(HEX, 32, "dd-api")
    add(
        "datadog api key env",
        f"DD_API_KEY={dd_api} DD_SITE=datadoghq.eu",
        [dd_api],
        ["datadog_key"],
        ["DD_SITE=datadoghq.eu"],
    )
    dd_app = fake(HEX, 40, "dd-app")
    add(
        "datadog application key header", f"DD-APPLICATION-KEY: {dd_app}", [dd_app], ["datadog_key"]
    )
    glsa = f"glsa_{fake(ALNUM, 32, 'glsa')}_{fake(HEX, 8, 'glsa2')}"
    add(
        "grafana service account token",
        f"grafana: token {glsa} rejected",
        [glsa],
        ["grafana_token"],
    )
    nrak = "NRAK-" + fake(UPPER, 27, "nrak")
    add("new relic user key", f"NEW_RELIC_API_KEY={nrak}", [nrak], ["newrelic_key"])
    hvs = "hvs." + fake(URLSAFE, 90, "vault")
    add(
        "vault token",
        f"VAULT_TOKEN={hvs} vault kv get secret/shop",
        [hvs],
        ["vault_token"],
        ["vault kv get secret/shop"],
    )
    dapi = "dapi" + fake(HEX, 32, "databricks")
    add(
        "databricks token",
        f"databricks: host=adb-1.azuredatabricks.net token {dapi}",
        [dapi],
        ["databricks_token"],
    )
    dckr = "dckr_pat_" + fake(URLSAFE, 27, "docker")
    add(
        "docker hub token",
        f"echo {dckr} | docker login -u acme --password-stdin",
        [dckr],
        ["docker_token"],
        ["docker login -u acme --password-stdin"],
    )
    tg = f"{fake(string.digits, 10, 'tg1')}:AA{fake(URLSAFE, 33, 'tg2')}"
    add(
        "telegram bot token",
        f"GET https://api.telegram.org/bot{tg}/sendMessage 401",
        [tg],
        ["telegram_bot_token"],
    )
    shpat = "shpat_" + fake(HEX, 32, "shopify")
    add("shopify token", f"X-Shopify-Access-Token: {shpat}", [shpat], ["shopify_token"])
    age = "AGE-SECRET-KEY-1" + fake("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58, "age")
    add("age secret key", f"# created: 2024-05-01\n{age}", [age], ["age_secret_key"])
    ltai = "LTAI" + fake(ALNUM, 20, "alibaba")
    add("alibaba access key", f"ALIBABA_CLOUD_ACCESS_KEY_ID={ltai}", [ltai], ["alibaba_access_key"])
    doppler = "dp.st.prd." + fake(ALNUM, 43, "doppler")
    add("doppler token", f"DOPPLER_TOKEN={doppler}", [doppler[10:]], ["doppler_token"])
    pulumi = "pul-" + fake(HEX, 40, "pulumi")
    add("pulumi token", f"PULUMI_ACCESS_TOKEN={pulumi}", [pulumi], ["pulumi_token"])
    tfc = f"{fake(ALNUM, 14, 'tf1')}.atlasv1.{fake(URLSAFE, 67, 'tf2')}"
    add(
        "terraform cloud token",
        f'credentials "app.terraform.io" {{ token = "{tfc}" }}',
        [tfc],
        ["terraform_token"],
    )
    sqp = "sqp_" + fake(HEX, 40, "sonar")
    add("sonarqube token", f"sonar-scanner -Dsonar.token={sqp}", [sqp], ["sonarqube_token"])
    lin = "lin_api_" + fake(ALNUM, 40, "linear")
    add("linear api key", f"linear: Authorization: {lin}", [lin], ["linear_key"])
    pmak = f"PMAK-{fake(HEX, 24, 'pm1')}-{fake(HEX, 34, 'pm2')}"
    add("postman api key", f"newman run --postman-api-key {pmak}", [pmak], ["postman_key"])
    mailchimp = fake(HEX, 32, "mailchimp") + "-us14"
    add(
        "mailchimp api key",
        f"mailchimp client configured key={mailchimp}",
        [mailchimp],
        ["mailchimp_key"],
    )
    tskey = f"tskey-auth-k{fake(ALNUM, 10, 'ts1')}CNTRL-{fake(ALNUM, 33, 'ts2')}"
    add("tailscale auth key", f"tailscale up --authkey={tskey}", [tskey], ["tailscale_key"])
    gsk = "gsk_" + fake(ALNUM, 52, "groq")
    add("groq key", f"GROQ_API_KEY={gsk}", [gsk], ["groq_key"])
    figd = "figd_" + fake(URLSAFE, 40, "figma")
    add("figma token", f"X-Figma-Token: {figd}", [figd], ["figma_token"])
    ccipat = f"CCIPAT_{fake(ALNUM, 22, 'cci1')}_{fake(HEX, 40, 'cci2')}"
    add("circleci token", f"circleci: Circle-Token {ccipat}", [ccipat], ["circleci_token"])
    # --- JWTs, headers, URLs ----------------------------------------------------------------
    jwt = _jwt("sa")
    add(
        "kubernetes service account jwt in request log",
        f'I0501 12:00:00.000000 1 round_trippers.go:553] curl -v -XGET -H "Authorization: Bearer '
        f'{jwt}" https://10.96.0.1:443/api/v1/namespaces/shop/pods',
        [jwt],
        ["jwt"],
        ["https://10.96.0.1:443/api/v1/namespaces/shop/pods", "Authorization: Bearer "],
    )
    session_jwt = _jwt("cookie")
    add(
        "jwt in a cookie",
        f"Set-Cookie: session={session_jwt}; Path=/; HttpOnly",
        [session_jwt],
        ["jwt"],
        ["Path=/; HttpOnly"],
    )
    opaque = fake(ALNUM, 40, "bearer")
    add(
        "opaque bearer token",
        f"upstream request headers: {{'authorization': 'Bearer {opaque}', 'x-request-id': 'abc'}}",
        [opaque],
        ["bearer_token"],
        ["'x-request-id': 'abc'"],
    )
    basic = "YWxlcnRtYW5hZ2VyOg" + fake(B64, 18, "basic") + "=="
    add("basic auth header", f"Authorization: Basic {basic}", [basic], ["basic_auth"])
    pw = fake(ALNUM, 16, "pg")
    add(
        "postgres url",
        f"DATABASE_URL=postgres://app:{pw}@db.shop.svc:5432/orders?sslmode=require",
        [pw],
        ["url_password"],
        ["postgres://app:", "@db.shop.svc:5432/orders?sslmode=require"],
    )
    pw = fake(ALNUM + "!#$", 14, "mysql")
    add(
        "mysql url",
        f"dial mysql://root:{pw}@10.0.4.12:3306/cart: i/o timeout",
        [pw],
        ["url_password"],
        ["@10.0.4.12:3306/cart: i/o timeout"],
    )
    pw = fake(ALNUM, 20, "mongo")
    add(
        "mongodb+srv url",
        f"MongoServerSelectionError: mongodb+srv://catalog:{pw}@cluster0.ab1cd.mongodb.net/"
        "catalog?retryWrites=true",
        [pw],
        ["url_password"],
        ["@cluster0.ab1cd.mongodb.net/catalog?retryWrites=true"],
    )
    pw = fake(ALNUM, 24, "redis")
    add(
        "redis url without user",
        f"REDIS_URL=redis://:{pw}@redis-master:6379/0",
        [pw],
        ["url_password"],
        ["@redis-master:6379/0"],
    )
    pw = fake(ALNUM, 18, "amqp")
    add(
        "amqp url",
        f"connecting to amqp://orders:{pw}@rabbitmq.shop:5672/%2F",
        [pw],
        ["url_password"],
        ["@rabbitmq.shop:5672/%2F"],
    )
    pw = fake(ALNUM, 15, "jdbc-pg")
    add(
        "jdbc url with password parameter",
        f"spring.datasource.url=jdbc:postgresql://db:5432/app?user=app&password={pw}&ssl=true",
        [pw],
        ["password"],
        ["&ssl=true", "user=app"],
    )
    pw = fake(ALNUM, 15, "jdbc-mssql")
    add(
        "jdbc sqlserver",
        f"jdbc:sqlserver://sql.shop:1433;databaseName=orders;user=sa;password={pw};encrypt=true",
        [pw],
        ["password"],
        [";encrypt=true"],
    )
    pw = fake(ALNUM + "!", 15, "ado")
    add(
        "ado.net connection string",
        f"Server=tcp:shop.database.windows.net,1433;Database=orders;User ID=app;Password={pw};"
        "Encrypt=True;",
        [pw],
        ["password"],
        ["Database=orders;User ID=app;", "Encrypt=True;"],
    )
    # --- key=value under secret-looking keys ----------------------------------------------------
    pw = fake(ALNUM, 12, "logfmt")
    add(
        "logfmt password",
        f'level=info msg="connecting" user=app password={pw} db=orders',
        [pw],
        ["password"],
        ["db=orders", "user=app"],
    )
    pw = fake(ALNUM, 12, "yaml")
    add(
        "yaml configmap diff",
        f"data:\n  database.host: db.shop\n  database.password: {pw}\n  pool.size: 20",
        [pw],
        ["password"],
        ["pool.size: 20", "database.host: db.shop"],
    )
    add(
        "yaml password of several words",
        "config:\n  smtp:\n    password: correct horse battery  # rotated weekly\n    port: 587",
        ["correct horse battery", "horse"],
        ["password"],
        ["# rotated weekly", "port: 587"],
    )
    secret = fake(URLSAFE, 40, "client-secret")
    add(
        "oauth client secret json",
        f'{{"client_id": "checkout", "client_secret": "{secret}"}}',
        [secret],
        ["secret"],
        ['"client_id": "checkout"'],
    )
    pw = "correct horse battery staple"
    add(
        "quoted password with spaces",
        f'{{"password": "{pw}", "user": "bob"}}',
        [pw, "battery"],
        ["password"],
        ['"user": "bob"'],
    )
    pw = fake(ALNUM, 10, "dbpass")
    add(
        "env var DB_PASS",
        f"DB_HOST=db\nDB_PASS={pw}\nDB_PORT=5432",
        [pw],
        ["password"],
        ["DB_PORT=5432"],
    )
    key = fake(ALNUM, 32, "apikey")
    add(
        "api_key in yaml",
        f"payments:\n  api_key: {key}\n  timeout: 5s",
        [key],
        ["api_key"],
        ["timeout: 5s"],
    )
    key = fake(ALNUM, 32, "x-api-key")
    add(
        "x-api-key header",
        f"x-api-key: {key}\ncontent-type: application/json",
        [key],
        ["api_key"],
        ["content-type: application/json"],
    )
    token = fake(HEX, 48, "camel")
    add(
        "camelCase accessToken",
        f"{{accessToken:{token} expiresIn:3600}}",
        [token],
        ["token"],
        ["expiresIn:3600"],
    )
    pw = fake(ALNUM, 14, "escaped")
    add(
        "escaped json inside a json log line",
        f'{{"level":"error","msg":"bad config {{\\"username\\":\\"app\\",\\"password\\":'
        f'\\"{pw}\\"}}"}}',
        [pw],
        ["password"],
        ['\\"username\\":\\"app\\"'],
    )
    pw = fake(ALNUM, 14, "k8s-env-yaml")
    add(
        "kubernetes env entry (yaml)",
        f"env:\n- name: DB_PASSWORD\n  value: {pw}\n- name: LOG_LEVEL\n  value: info",
        [pw],
        ["password"],
        ["value: info", "name: DB_PASSWORD"],
    )
    tok = fake(ALNUM, 30, "k8s-env-json")
    add(
        "kubernetes env entry (json)",
        f'"env": [{{"name": "API_TOKEN", "value": "{tok}"}}, {{"name": "PORT", "value": "8080"}}]',
        [tok],
        ["token"],
        ['"value": "8080"'],
    )
    auth = "YWNtZTp" + fake(B64, 30, "dockercfg") + "="
    add(
        "docker config auth",
        f'{{"auths": {{"ghcr.io": {{"auth": "{auth}"}}}}}}',
        [auth],
        ["auth"],
        ['"ghcr.io"'],
    )
    pw = fake(ALNUM, 12, "curl")
    add(
        "curl -u",
        f"+ curl -sf -u admin:{pw} http://grafana:3000/api/health",
        [pw],
        ["password"],
        ["http://grafana:3000/api/health"],
    )
    pw = fake(ALNUM, 12, "cli")
    add("cli flag", f"args: [--db-password {pw} --port 8080]", [pw], ["password"], ["--port 8080"])
    pw = fake(ALNUM, 12, "sql")
    add(
        "sql identified by",
        f"CREATE USER 'app'@'%' IDENTIFIED BY '{pw}';",
        [pw],
        ["password"],
        ["CREATE USER"],
    )
    pw = fake(ALNUM, 12, "xml")
    add(
        "xml password element",
        f"<datasource><user>app</user><password>{pw}</password>",
        [pw],
        ["password"],
        ["<user>app</user>"],
    )
    # --- private keys -----------------------------------------------------------------------
    for label in (
        "RSA PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "EC PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    ):
        block, body = pem(label, label)
        add(
            f"pem {label.lower()}",
            f"configmap tls-bundle changed:\n{block}\nroll pods to pick it up",
            body,
            ["private_key"],
            ["configmap tls-bundle changed:", "roll pods to pick it up"],
        )
    block, body = pem("RSA PRIVATE KEY", "cut")
    cut = block[: len(block) // 2]
    add(
        "pem cut off by a log line limit",
        f"key: {cut}",
        [b for b in body if b in cut][:2],
        ["private_key"],
    )
    # --- personal data ----------------------------------------------------------------------
    add(
        "email in an event message",
        "order 8812 confirmation to jane.doe+shop@example.co.uk bounced (550 mailbox full)",
        ["jane.doe+shop@example.co.uk"],
        ["email"],
        ["order 8812", "bounced (550 mailbox full)"],
    )
    return c


# Ordinary log content that looks a little like secrets and must come through unchanged.
BENIGN: list[str] = [
    "deploy of commit 3f2c1a9e8b7d6c5f4e3d2c1b0a9f8e7d6c5b4a39 (short 3f2c1a9) by ci",
    "request_id=123e4567-e89b-12d3-a456-426614174000 status=500 duration=1.2s",
    "Back-off restarting failed container app in pod checkout-7d9f8b6c5-x2x9z_shop(5b1f2c3d-"
    "4e5f-6a7b-8c9d-0e1f2a3b4c5d)",
    "image ghcr.io/acme/checkout@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15"
    "b0f00a08 pulled",
    "dial tcp 10.0.3.17:5432: connect: connection refused",
    "listening on [fe80::1ff:fe23:4567:890a]:8080 and 0.0.0.0:9090",
    "2024-05-01T12:34:56.789Z ts=1714567890123 took 250ms",
    "replicaset.apps/checkout-7d9f8b6c5 scaled to 3; statefulset.apps/redis-master-0 ready",
    'Error: secret "db-credentials" not found; secretName: app-tls; envFrom secretRef app-env',
    'MountVolume.SetUp failed for volume "kube-api-access-8x2kq" : object "shop"/"kube-root-ca.crt"'
    " not registered",
    'Failed to pull image "registry.example.com/shop/cart:v2.3.1": rpc error: code = NotFound',
    "failed to refresh token: context deadline exceeded",
    "auth: x509: certificate signed by unknown authority",
    'pq: password authentication failed for user "app"',
    "password_file: /etc/secrets/db; DB_PASSWORD=(from reference); token_count=1532 "
    "max_tokens=4000",
    "automountServiceAccountToken: false; type: kubernetes.io/service-account-token",
    "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    'etag: "33a64df551425fcc55e4d42a148795d9f25f89d4"',
    'sum(rate(http_requests_total{job="checkout",code=~"5.."}[5m])) by (pod) > 0.05',
    "GET https://api.example.com:8443/v1/orders?page=2&limit=50 200",
    "docker run -u 1000:1000 --rm busybox; npm i lodash@4.17.21; git clone git@github.com:acme/x",
    "\tat com.acme.cart.CartService.add(CartService.java:42)",
    "arn:aws:iam::123456789012:role/checkout-irsa on node ip-10-0-1-23.eu-west-1.compute.internal",
    "401 Unauthorized: bearer token missing; invalid token: expired",
    "OOMKilled: container app exceeded memory limit 512Mi (used 530Mi), restarts=7",
    "Bot token (xoxb-, scopes chat:write, files:write); unset = no Slack",
    'level=warn msg="retrying" attempt=3 backoff=2s err="EOF"',
    "checkout-v2-654dcbd9f4-v8hfb -> paymentservice-v1-65d5f78d47-j975z p99=1.84s",
    "sha1=da39a3ee5e6b4b0d3255bfef95601890afd80709 crc32c=AAAAAA==",
]
