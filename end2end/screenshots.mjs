// The demo walked end to end, as its people would, without break glass — and docs/screenshots/*.png
// taken on the way. Against a running Tenantry with the demo data (`scripts/run`: demo metrics
// and Prometheus included), signing in with the demo users and the admin token it printed:
//
//   set -a; . .data/demo-users.env; . .data/demo-tokens.env; set +a
//   (cd end2end && TENANTRY_URL=http://127.0.0.1:3000 node screenshots.mjs)
//
// It shortens the plan's monitoring windows (plan settings, as the README says), then for the
// pilot and for 10%: ticks the gate's checklists and signs its milestones (through the API, with
// the demo admin token), waits for the guards to read ok from Prometheus, has the product owner
// make the change in the web app — refused until approved —, ask for approval, and an admin
// approve it, then makes it. It fails (exit 1) if any step does not happen, so it also proves the
// demo works. Run it on a fresh demo (the flag OFF); on a flag already further it only takes the
// screenshots.
import { chromium } from '@playwright/test';

const base = process.env.TENANTRY_URL ?? 'http://127.0.0.1:3000';
const token = process.env.SAAS_ADMIN_TOKEN;
const out = new URL('../docs/screenshots/', import.meta.url).pathname;
const FLAG = 'multi_workspace_enabled';
const PLAN = `/api/admin/flags/${FLAG}/plan`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});

function fail(why) {
  console.error(`demo walk failed: ${why}`);
  process.exit(1);
}
if (!token) fail('SAAS_ADMIN_TOKEN is not set (source .data/demo-tokens.env)');

async function api(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) fail(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function session(user, password) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  await page.goto(`${base}/login?next=%2F`);
  await page.getByTestId('username').fill(user);
  await page.getByTestId('password').fill(password);
  await page.getByTestId('sign-in').click();
  await page.waitForURL(`${base}/`);
  return page;
}
async function shot(page, path, name, ready) {
  if (path) await page.goto(base + path);
  await page.waitForSelector('body[data-hydrated=true]');
  if (ready) await page.waitForSelector(ready);
  await page.waitForTimeout(400);
  await page.screenshot({ path: `${out}${name}.png`, fullPage: true });
  console.log(`docs/screenshots/${name}.png`);
}

/** Ticks every item of the gate's checklists and signs its milestones, as the admin token. */
async function meetGates(phase) {
  const plan = await api('GET', PLAN);
  const gates = plan.gates.find((g) => g.phase === phase);
  if (!gates) fail(`the plan has no gates into ${phase}`);
  for (const name of gates.checklists) {
    const list = plan.document.checklists.find((c) => c.name === name);
    for (const item of list?.items ?? []) {
      await api('POST', `${PLAN}/ticks`, { checklist: name, item, note: 'demo walk' });
    }
  }
  for (const milestone of gates.milestones) {
    await api('POST', `${PLAN}/signoffs`, { milestone });
  }
  console.log(`gates into ${phase}: ${gates.checklists.length} checklist(s) ticked, ${gates.milestones.length} milestone(s) signed`);
}

/** Waits until every guard of the plan reads ok (the guard monitor queries Prometheus). */
async function guardsOk() {
  for (let i = 0; i < 120; i++) {
    const plan = await api('GET', PLAN);
    const states = plan.guard_states ?? [];
    if (plan.guards.every((g) => states.some((s) => s.guard === g.name && s.level === 'ok'))) {
      console.log(`guards ok: ${plan.guards.map((g) => g.name).join(', ')}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  fail('the guards never read ok: is Prometheus scraping the demo metrics (scripts/run starts both)?');
}

/** The plan panel's unmet list, as the API gives it. */
async function unmet() {
  return (await api('GET', PLAN)).unmet_text ?? [];
}

/** An admin (a second person) approves the product owner's waiting request on the flag page. */
async function adminApproves(adminPage) {
  await adminPage.goto(`${base}/flags/${FLAG}#approvals`);
  await adminPage.getByTestId('plan-approve').first().click();
  await adminPage.waitForURL(/#approvals$/);
}

const anon = await browser.newPage({ viewport: { width: 1280, height: 700 } });
await shot(anon, '/login', 'login', '[data-testid=username]');

const po = await session('product-owner', process.env.DEMO_PASSWORD_PRODUCT_OWNER);
const adm = await session('admin', process.env.DEMO_PASSWORD_ADMIN);
await po.goto(`${base}/flags/${FLAG}`);
await po.waitForSelector('[data-testid=percentage]');

const phase = async () => (await api('GET', `/api/admin/flags/${FLAG}`)).rollout.phase;
if ((await phase()) === 'off') {
  // Shorten the monitoring windows for the demo (plan settings).
  const plan = await api('GET', PLAN);
  await api('PUT', `${PLAN}/settings`, { gates: plan.gates.map((g) => ({ ...g, min_window_hours: 0 })) });
  await meetGates('pilot');
  const left = await unmet();
  if (left.some((u) => !/approv/i.test(u))) fail(`gates into the pilot still open: ${left.join('; ')}`);

  // The product owner picks two pilots in the editor; saving is refused until approved.
  for (const q of ['acme-logistics', 'globex-health']) {
    await po.getByTestId('pilot-search').fill(q);
    await po.getByTestId('pilot-add').first().click();
  }
  await po.getByTestId('save').click();
  await po.getByTestId('refused-actions').waitFor();
  await po.getByTestId('ask-approval').click();
  await po.getByText('Approval requested').waitFor();
  await adminApproves(adm);
  await po.getByTestId('save').click();
  await po.getByText(/Saved: 2 tenant\(s\) turned ON/).waitFor();
  console.log('pilot: acme-logistics and globex-health are ON (approved by admin)');
}

if ((await phase()) === 'pilot') {
  await meetGates('10%');
  await guardsOk();
  await po.goto(`${base}/flags/${FLAG}`);
  await po.waitForSelector('body[data-hydrated=true]');
  await po.getByTestId('phase-10%').click();
  await shot(po, null, 'flag-preview', '[data-testid=preview-on]');
  // Advancing from the plan panel: refused for the approval, asked, approved, done.
  await po.goto(`${base}/flags/${FLAG}#plan-gates`);
  await po.getByTestId('plan-request').click();
  await po.waitForURL(/#plan-gates$/);
  await adminApproves(adm);
  await po.goto(`${base}/flags/${FLAG}#plan-gates`);
  await po.getByTestId('plan-advance').click();
  await po.getByTestId('plan-done').waitFor();
  const flag = await api('GET', `/api/admin/flags/${FLAG}`);
  if (flag.rollout.phase !== '10%') fail(`the advance did not happen: ${(await unmet()).join('; ')}`);
  console.log(`10%: ${flag.tenants_on} tenant(s) ON, no break glass`);
} else {
  // Already rolled out further: preview the next step without saving it.
  await po.getByTestId('phase-50%').click();
  await shot(po, null, 'flag-preview', '[data-testid=preview-on]');
}
const audit = await api('GET', `/api/admin/audit?flag=${FLAG}&limit=200`);
if (audit.some((e) => e.action === 'gate.override')) fail('a gate was overridden');

await shot(po, `/flags/${FLAG}`, 'flag-plan', '[data-testid=plan-gates]');
await shot(po, '/', 'dashboard', '[data-testid=dash-flag]');
await shot(po, '/flags', 'flags', '[data-testid=flag-row]');
await shot(po, '/tenants?state=on', 'tenants', '[data-testid=tenant-row]');
await shot(po, '/tenants/acme-logistics', 'tenant', '[data-testid=tenant-flag]');
await shot(po, '/monitoring', 'monitoring', '[data-testid=activity-chart]');
const now = new Date(Date.now() + 1000).toISOString().slice(0, 19);
await shot(po, `/audit?tt_flag=${FLAG}&tt_at=${now}`, 'audit', '[data-testid=tt-result]');

// Phones: the dashboard and the flag page at 390 px.
const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
await phone.context().addCookies(await po.context().cookies());
await shot(phone, '/', 'phone-dashboard', '[data-testid=dash-flag]');
await shot(phone, `/flags/${FLAG}`, 'phone-flag', '[data-testid=plan-gates]');

const dba = await session('dba', process.env.DEMO_PASSWORD_DBA);
await shot(dba, '/dba/migrations', 'dba-migrations', '[data-testid=migration-row]');
await shot(dba, '/dba/health', 'dba-health', '[data-testid=table-row]');
await dba.goto(`${base}/dba/backups`);
await dba.waitForSelector('body[data-hydrated=true]');
if ((await dba.getByTestId('backup-row').count()) === 0) {
  await dba.getByTestId('take-backup').click();
  await dba.getByTestId('backup-row').first().waitFor();
}
await shot(dba, null, 'dba-backups', '[data-testid=backup-row]');
await browser.close();
