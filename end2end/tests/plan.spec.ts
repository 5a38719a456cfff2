import { Page } from '@playwright/test';
import { adminToken, base, expect, signIn, test, users } from './helpers';

// A flag of its own with the seed's plan: the gates into pilot are the prerequisites and the smoke
// test ticked, "Code deployed", "Migrations applied" and "Smoke tests passed" signed, migrations
// applied, and a second user's approval of the exact change.
const FLAG = `plan_journey_${Date.now()}`;
const plan = `/api/admin/flags/${FLAG}/plan`;

test.describe.configure({ mode: 'serial' });

async function admin(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

const panel = (page: Page) => page.getByTestId('plan-panel');
const item = (page: Page, name: string) => panel(page).locator(`[data-testid="checklist-item"][data-item="${name}"]`);
const milestone = (page: Page, name: string) => panel(page).locator(`[data-testid="milestone"][data-name="${name}"]`);

test.beforeAll(async () => {
  test.skip(!adminToken, 'scripts/test provides E2E_ADMIN_TOKEN');
  expect((await admin('POST', '/api/admin/flags', { key: FLAG, description: 'Plan journey' })).status).toBe(201);
  // The parts of the gate this journey does not walk through the UI: set up through the API.
  const doc = await (await admin('GET', plan)).json();
  const prereq = doc.document.checklists.find((c: { name: string }) => c.name === 'Prerequisites');
  for (const i of prereq.items) {
    expect((await admin('POST', `${plan}/ticks`, { checklist: 'Prerequisites', item: i })).status).toBe(201);
  }
  for (const m of ['Code deployed', 'Migrations applied']) {
    expect((await admin('POST', `${plan}/signoffs`, { milestone: m })).status).toBe(201);
  }
});

test("a product owner's advance is refused while the smoke test is open", async ({ page }) => {
  await signIn(page, users.po, `/flags/${FLAG}`);
  await expect(panel(page).getByTestId('unmet')).toContainText('not ticked: Smoke Test (Existing Features) — Login works');
  await panel(page).getByTestId('plan-advance').click();
  await expect(panel(page).getByTestId('plan-error')).toContainText('do not hold');
  await expect(panel(page).getByTestId('plan-error')).toContainText('not signed: Smoke tests passed');
  const flag = await (await admin('GET', `/api/admin/flags/${FLAG}`)).json();
  expect(flag.rollout.phase).toBe('off');
});

test('QA ticks the smoke-test items and signs "Smoke tests passed", but not a Product milestone', async ({ page }) => {
  await signIn(page, users.qa, `/flags/${FLAG}`);
  const smoke = panel(page).locator('[data-testid="checklist"][data-name="Smoke Test (Existing Features)"]');
  const names = await smoke.locator('[data-testid="checklist-item"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-item') ?? ''));
  expect(names.length).toBe(5);
  for (const name of names) {
    const row = item(page, name);
    await row.locator('input[name="note"]').fill('checked on staging');
    await row.getByTestId('tick').click();
    await expect(item(page, name)).toHaveAttribute('data-ticked', 'true');
    await expect(item(page, name)).toContainText('ticked by qa');
  }
  await milestone(page, 'Smoke tests passed').getByTestId('sign').click();
  await expect(milestone(page, 'Smoke tests passed')).toHaveAttribute('data-signed', 'true');
  await expect(milestone(page, 'Smoke tests passed')).toContainText('Signed by qa (qa)');
  // No button for a Product milestone, and the server function refuses it.
  await expect(milestone(page, 'Pilot enabled').getByTestId('sign')).toHaveCount(0);
  const res = await page.request.post('/rpc/plan_sign', {
    form: { key: FLAG, milestone: 'Pilot enabled', signed: 'true' },
    headers: { Accept: 'application/json', Origin: base },
  });
  expect(res.ok()).toBe(false);
  expect(await res.text()).toContain('signed by its owner');
  const state = await (await admin('GET', plan)).json();
  expect(state.signoffs.map((s: { milestone: string }) => s.milestone)).not.toContain('Pilot enabled');
});

test('with the gates held the advance still needs a second approver, then succeeds', async ({ page }) => {
  await signIn(page, users.po, `/flags/${FLAG}`);
  await expect(panel(page).getByTestId('unmet')).toHaveText(/not approved/);
  await panel(page).getByTestId('plan-advance').click();
  await expect(panel(page).getByTestId('plan-error')).toContainText('needs the approval of a second user');
  await panel(page).getByTestId('plan-request').click();
  await expect(panel(page).getByTestId('request-state')).toHaveText('waiting for approval');
  // The requester sees no Approve button; another user approves (here the admin token).
  await expect(panel(page).getByTestId('plan-approve')).toHaveCount(0);
  const state = await (await admin('GET', plan)).json();
  const request = state.requests[0];
  expect(request.change_hash).toBe(state.proposal.hash);
  expect((await admin('POST', `${plan}/requests/${request.id}/approve`)).status).toBe(200);
  await page.reload();
  await expect(panel(page).getByTestId('gates-ok')).toBeVisible();
  await panel(page).getByTestId('plan-advance').click();
  await expect(panel(page).locator('h3').first()).toHaveText('Gates into 10%');
  await expect(panel(page).getByTestId('unmet')).toContainText('monitoring window not elapsed');
  const flag = await (await admin('GET', `/api/admin/flags/${FLAG}`)).json();
  expect(flag.rollout.phase).toBe('pilot');
});

test('a pilot added in the editor is refused until a second person approves exactly that change', async ({ page }) => {
  await signIn(page, users.po, `/flags/${FLAG}`);
  await expect(page.locator('body[data-hydrated="true"]')).toBeAttached();
  await expect(page.getByTestId('current-phase')).toHaveText('pilot');
  await page.getByTestId('pilot-search').fill('acme-logistics');
  await page.getByTestId('pilot-add').first().click();
  await expect(page.getByTestId('preview-on-count')).toHaveText('1');
  await page.getByTestId('save').click();
  // Same phase, one more tenant ON: the gates apply (here, the approval of this exact change).
  await expect(page.getByTestId('flag-message')).toContainText('not approved');
  await expect(page.getByTestId('refused-actions')).toBeVisible();
  await expect(page.getByTestId('save-override')).toHaveCount(0); // product owners do not break glass
  let flag = await (await admin('GET', `/api/admin/flags/${FLAG}`)).json();
  expect(flag.rollout.pilots).toEqual([]);
  await page.getByTestId('ask-approval').click();
  await expect(page.getByTestId('flag-message')).toContainText('Approval requested');
  const state = await (await admin('GET', plan)).json();
  const request = state.requests.find((r: { change: unknown }) => typeof r.change === 'object' && r.change !== null);
  expect(request.turned_on).toBe(1);
  expect(request.requested_by).toBe('po');
  expect((await admin('POST', `${plan}/requests/${request.id}/approve`)).status).toBe(200);
  await page.getByTestId('save').click();
  await expect(page.getByTestId('flag-message')).toHaveText(/Saved: 1 tenant\(s\) turned ON/);
  flag = await (await admin('GET', `/api/admin/flags/${FLAG}`)).json();
  expect(flag.rollout.pilots).toEqual(['acme-logistics']);
});
