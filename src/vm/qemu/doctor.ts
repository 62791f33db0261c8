import { access } from 'node:fs/promises';
import { findTool, HOST_REQUIREMENTS } from '../host-requirements.js';
import type { DoctorCheck, DoctorContext } from '../doctor-check.js';
import { homePaths } from '../home.js';
import { toolVersion } from '../tool-version.js';
import { chooseAccelerator } from './accel.js';
import { qemuBinary } from './args.js';
import { buildLinuxBrowserImage } from './image/build-linux-browser.js';
import { buildLinuxTestImage, missingHostTools } from './image/build-linux-test.js';
import { MANIFEST_FILE } from './manifest.js';
import { resolveQemuSettings, type AcceleratorSetting } from './settings.js';

/** The Debian package that brings `bin`, from the one host list. */
function aptFor(bin: string): string[] {
  const requirement = HOST_REQUIREMENTS.find((r) => r.bin === bin);
  return requirement ? [requirement.apt] : [];
}

/**
 * qemu and qemu-img, the accelerator qemu really boots with here, the tools that build the test
 * guests, and the guests themselves (linux-test; linux-browser with --with-test-tools).
 */
export async function qemuDoctorChecks(context: DoctorContext): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  let settings: ReturnType<typeof resolveQemuSettings>;
  try {
    settings = resolveQemuSettings(context.config.section);
  } catch (error) {
    return [{ area: 'qemu', ok: false, detail: (error as Error).message, fix: 'fix the `qemu` section of macvm.config.ts, or MACVM_ACCEL / MACVM_QEMU_BINARY' }];
  }
  const binary = qemuBinary('x86_64', settings.binary);
  const qemu = await toolVersion(binary);
  checks.push(qemu ? { area: 'qemu', ok: true, detail: qemu } : { area: 'qemu', ok: false, detail: `${binary} not found`, apt: aptFor('qemu-system-x86_64') });
  if (qemu) checks.push(await acceleratorCheck(binary, settings.accelerator));
  const qemuImg = await toolVersion('qemu-img');
  checks.push(qemuImg ? { area: 'qemu-img', ok: true, detail: qemuImg } : { area: 'qemu-img', ok: false, detail: 'qemu-img not found', apt: aptFor('qemu-img') });

  const buildTools = await missingHostTools();
  checks.push(
    buildTools.tools.length === 0
      ? { area: 'image tools', ok: true, detail: 'everything needed to build linux-test and linux-browser is installed' }
      : { area: 'image tools', ok: false, detail: `missing: ${buildTools.tools.join(', ')}`, apt: buildTools.aptPackages },
  );
  checks.push(
    (await imageBuilt('linux-test'))
      ? { area: 'image', ok: true, detail: `linux-test built (${homePaths().image('linux-test')})` }
      : { area: 'image', ok: false, detail: 'linux-test is not built', fix: 'macvm image build linux-test', fixedByDoctor: true },
  );
  if (context.withTestTools) {
    checks.push(
      (await imageBuilt('linux-browser'))
        ? { area: 'browser image', ok: true, detail: `linux-browser built (${homePaths().image('linux-browser')})` }
        : { area: 'browser image', ok: false, detail: 'linux-browser is not built (the browser-in-a-VM tests use it)', fix: 'macvm image build linux-browser', fixedByDoctor: true },
    );
  }
  return checks;
}

/** `doctor --fix`: builds the guests that are missing (linux-browser only with --with-test-tools), once qemu-img is there. */
export async function buildMissingGuests(context: DoctorContext): Promise<void> {
  if (!(await findTool('qemu-img'))) return;
  const builds = [
    { name: 'linux-test', build: buildLinuxTestImage, note: 'first use' },
    // The browser-in-a-VM tests' guest: built here so a test run does not start with a build.
    ...(context.withTestTools ? [{ name: 'linux-browser', build: buildLinuxBrowserImage, note: 'first use, ~230 MiB of Debian packages' }] : []),
  ];
  for (const { name, build, note } of builds) {
    if (await imageBuilt(name)) continue;
    context.progress.say(`Building the ${name} guest (${note})…`);
    await build({ imageDir: homePaths().image(name), onProgress: context.progress.update });
    context.progress.done();
  }
}

/**
 * The accelerator qemu really boots with here: the same probe (and cached verdict) as a
 * boot, so a /dev/kvm that cannot run a guest reads "kvm: present, unusable (…) → tcg".
 */
async function acceleratorCheck(binary: string, requested: AcceleratorSetting): Promise<DoctorCheck> {
  try {
    const choice = await chooseAccelerator({ guestArch: 'x86_64', requested, binary, home: homePaths().home });
    const emulated = choice.accel === 'tcg' ? ' (software emulation: slower, works everywhere)' : '';
    return { area: 'accelerator', ok: true, detail: `${choice.accel}${emulated} — ${choice.reason}${choice.source === 'cache' ? ' (probed earlier on this host state)' : ''}` };
  } catch (error) {
    return { area: 'accelerator', ok: false, detail: (error as Error).message, fix: 'unset MACVM_ACCEL / qemu.accelerator (auto falls back to tcg)' };
  }
}

async function imageBuilt(name: string): Promise<boolean> {
  return access(`${homePaths().image(name)}/${MANIFEST_FILE}`).then(
    () => true,
    () => false,
  );
}
