// Regenerates docs/screenshots/*.png against a running Tenantry with the demo data
// (`scripts/run`), signing in with the demo users it printed (.data/demo-users.env):
//
//   set -a; . .data/demo-users.env; set +a
//   (cd end2end && TENANTRY_URL=http://127.0.0.1:3000 node screenshots.mjs)
//
// It changes the demo data the way a product owner would: two pilots, then 10% (once).
import { chromium } from '@playwright/test';

const base = process.env.TENANTRY_URL ?? 'http://127.0.0.1:3000';
const out = new URL('../docs/screenshots/', import.meta.url).pathname;
const FLAG = 'multi_workspace_enabled';
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});

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

const anon = await browser.newPage({ viewport: { width: 1280, height: 700 } });
await shot(anon, '/login', 'login', '[data-testid=username]');

const po = await session('product-owner', process.env.DEMO_PASSWORD_PRODUCT_OWNER);
await po.goto(`${base}/flags/${FLAG}`);
await po.waitForSelector('[data-testid=percentage]');
if ((await po.getByTestId('current-phase').textContent()) === 'off') {
  for (const q of ['acme-logistics', 'globex-health']) {
    await po.getByTestId('pilot-search').fill(q);
    await po.getByTestId('pilot-add').first().click();
  }
  await po.getByTestId('save').click();
  await po.getByTestId('flag-message').waitFor();
}
if ((await po.getByTestId('current-phase').textContent()) === 'pilot') {
  await po.getByTestId('phase-10%').click();
  await shot(po, null, 'flag-preview', '[data-testid=preview-on]');
  await po.getByTestId('save').click();
  await po.getByTestId('flag-message').waitFor();
} else {
  // Already rolled out further: preview the next step without saving it.
  await po.getByTestId('phase-50%').click();
  await shot(po, null, 'flag-preview', '[data-testid=preview-on]');
}
await shot(po, `/flags/${FLAG}`, 'flag-plan', '[data-testid=plan-gates]');
await shot(po, '/', 'dashboard', '[data-testid=dash-flag]');
await shot(po, '/flags', 'flags', '[data-testid=flag-row]');
await shot(po, '/tenants?state=on', 'tenants', '[data-testid=tenant-row]');
await shot(po, '/tenants/acme-logistics', 'tenant', '[data-testid=tenant-flag]');
await shot(po, '/monitoring', 'monitoring', '[data-testid=activity-chart]');
const now = new Date(Date.now() + 1000).toISOString().slice(0, 19);
await shot(po, `/audit?tt_flag=${FLAG}&tt_at=${now}`, 'audit', '[data-testid=tt-result]');

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
