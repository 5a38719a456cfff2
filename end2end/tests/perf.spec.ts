import { writeFileSync, mkdirSync } from 'node:fs';
import { expect, signIn, test, users } from './helpers';

// Run by scripts/test as the `perf` project, after the journeys and after loading 100,000 demo
// tenants. It logs figures (docs/BENCHMARKS.md records them); speed is not asserted here.
const FLAG = 'multi_workspace_enabled';

test('preview of a percentage change over 100,000 tenants, measured in Chromium', async ({ page }) => {
  test.setTimeout(180_000);
  await signIn(page, users.po, `/flags/${FLAG}`);
  await expect(page.getByTestId('percentage')).toBeVisible({ timeout: 120_000 });
  const total = Number((await page.getByText(/of \d+ tenants ON/).textContent())?.match(/of (\d+) tenants/)?.[1]);
  expect(total).toBeGreaterThanOrEqual(100_000);

  const runs: { percent: number; computeMs: number; frameMs: number; on: number }[] = [];
  for (const percent of [10, 50, 25, 75, 100, 5, 60, 30, 90, 20]) {
    // From the input event to the next painted frame, and the Rust computation alone.
    const frameMs = await page.evaluate(async (p) => {
      const input = document.querySelector('[data-testid="percentage"]') as HTMLInputElement;
      const t0 = performance.now();
      input.value = String(p);
      input.dispatchEvent(new Event('input', { bubbles: true }));
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      return performance.now() - t0;
    }, percent);
    const computeMs = Number(await page.getByTestId('preview').getAttribute('data-preview-ms'));
    const on = Number(await page.getByTestId('preview-on-count').textContent());
    expect(on).toBeGreaterThan(0);
    runs.push({ percent, computeMs, frameMs, on });
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const result = {
    tenants: total,
    median_compute_ms: median(runs.map((r) => r.computeMs)),
    max_compute_ms: Math.max(...runs.map((r) => r.computeMs)),
    median_frame_ms: median(runs.map((r) => r.frameMs)),
    runs,
  };
  console.log(`PREVIEW-100K ${JSON.stringify(result)}`);
  mkdirSync('test-results', { recursive: true });
  writeFileSync('test-results/preview-100k.json', JSON.stringify(result, null, 2));
});
