/** Boot-time sysctl.d values, read in systemd's order with its precedence and masking rules. */
import assert from "node:assert/strict";
import { pinnedBy, readBootSysctls } from "../../src/kernel/sysctl_d.ts";
import { PinnedPolicy } from "../../src/daemon/pinned_policy.ts";
import type { Proposal } from "../../src/tuning/proposal.ts";

function tree(files: Record<string, string | { link: string }>): string {
  const root = Deno.makeTempDirSync({ prefix: "bpfp-sysctl-d-" });
  for (const [path, content] of Object.entries(files)) {
    const full = `${root}${path}`;
    Deno.mkdirSync(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    if (typeof content === "string") Deno.writeTextFileSync(full, content);
    else Deno.symlinkSync(content.link, full);
  }
  return root;
}

function withTree(files: Record<string, string | { link: string }>, fn: (root: string) => void) {
  const root = tree(files);
  try {
    fn(root);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
}

const RMEM = "net.ipv4.tcp_rmem";

Deno.test("sysctl.d: lexicographic order across directories, /etc masks /usr/lib, last wins", () => {
  withTree({
    "/usr/lib/sysctl.d/10-vendor.conf": "net.ipv4.tcp_rmem = 1 2 3\nnet.core.somaxconn=100\n",
    "/etc/sysctl.d/10-vendor.conf":
      "# the admin's copy masks the vendor's\nnet.core.somaxconn = 200\n",
    "/run/sysctl.d/20-run.conf": "net/ipv4/tcp_wmem = 4096   16384 65536\n",
    "/usr/lib/sysctl.d/30-later.conf": "; comment\n-net.ipv4.tcp_wmem = 5 6 7\n",
    "/usr/lib/sysctl.d/40-masked.conf": "net.ipv4.tcp_mem = 1 2 3\n",
    "/etc/sysctl.d/40-masked.conf": { link: "/dev/null" },
    "/etc/sysctl.d/README.sysctl": "net.ipv4.tcp_mem = 9 9 9\n",
    "/etc/sysctl.conf": "net.core.somaxconn = 300\nbroken line\n",
  }, (root) => {
    const boot = readBootSysctls(root);
    assert.deepEqual(boot.files, [
      "/etc/sysctl.d/10-vendor.conf",
      "/run/sysctl.d/20-run.conf",
      "/usr/lib/sysctl.d/30-later.conf",
      "/etc/sysctl.conf",
    ]);
    assert.equal(pinnedBy(boot, RMEM), null, "the masked vendor file sets nothing");
    assert.deepEqual(pinnedBy(boot, "net.ipv4.tcp_wmem"), {
      value: "5 6 7",
      file: "/usr/lib/sysctl.d/30-later.conf",
      line: 2,
    });
    assert.equal(pinnedBy(boot, "net.ipv4.tcp_mem"), null, "/dev/null masks; only *.conf read");
    assert.deepEqual(pinnedBy(boot, "net.core.somaxconn"), {
      value: "300",
      file: "/etc/sysctl.conf",
      line: 1,
    });
    assert.deepEqual(boot.problems, ["/etc/sysctl.conf:2: no '=' in 'broken line'"]);
  });
});

Deno.test("sysctl.d: glob keys and '!' exclusions, in file order against exact keys", () => {
  withTree({
    "/etc/sysctl.d/10-glob.conf":
      "net.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.all.rp_filter = 1\n",
    "/etc/sysctl.d/20-not.conf": "!net.ipv4.conf.lo.rp_filter\n",
  }, (root) => {
    const boot = readBootSysctls(root);
    assert.equal(pinnedBy(boot, "net.ipv4.conf.eth0.rp_filter")?.value, "2");
    assert.equal(pinnedBy(boot, "net.ipv4.conf.all.rp_filter")?.value, "1");
    assert.equal(pinnedBy(boot, "net.ipv4.conf.lo.rp_filter"), null);
  });
});

function proposal(to: number[], netns = "global"): Proposal {
  return {
    tuner: "tcp_buffer",
    scenario: "s",
    sysctl: RMEM,
    netns,
    from: [4096, 131072, 6291456],
    to,
    reason: "r",
  } as Proposal;
}

Deno.test("pinned values are the administrator's; --tune-above-pinned only raises them", () => {
  withTree(
    { "/etc/sysctl.d/50-admin.conf": "net.ipv4.tcp_rmem = 4096 131072 6291456\n" },
    (root) => {
      const scopeOf = () => "netns" as const;
      const strict = new PinnedPolicy({ tuneAbove: false, scopeOf }, root);
      assert.match(
        strict.refusal(proposal([4096, 131072, 7864320]))!,
        /^pinned at boot by \/etc\/sysctl\.d\/50-admin\.conf:1 \(4096 131072 6291456\)/,
      );
      assert.equal(strict.refusal(proposal([4096, 131072, 7864320], "ns:4026532999")), null);
      assert.equal(strict.frozen(RMEM, "global"), true);

      const above = new PinnedPolicy({ tuneAbove: true, scopeOf }, root);
      assert.equal(above.refusal(proposal([4096, 131072, 7864320])), null);
      assert.match(above.refusal(proposal([4096, 65536, 7864320]))!, /below the value pinned/);
      assert.equal(above.frozen(RMEM, "global"), false);

      Deno.removeSync(`${root}/etc/sysctl.d/50-admin.conf`);
      strict.reload();
      assert.equal(strict.refusal(proposal([4096, 131072, 7864320])), null, "reload sees it gone");
    },
  );
});

Deno.test("query tunables shows which file pins a value", async () => {
  const { renderAnswer } = await import("../../src/cli/query.ts");
  const row = {
    tuner: "tcp_buffer",
    name: RMEM,
    kind: "sysctl",
    type: "integer",
    values: [4096, 131072, 6291456],
    overridden: false,
  };
  const text = renderAnswer("tunables", [
    { ...row, managed: false, pinnedBy: "/etc/sysctl.d/50-admin.conf:2" },
    { ...row, name: "net.ipv4.tcp_wmem", managed: true, pinnedBy: "/etc/sysctl.conf:1" },
  ]);
  assert.match(text, /net\.ipv4\.tcp_rmem\s+pinned by \/etc\/sysctl\.d\/50-admin\.conf:2/);
  assert.match(
    text,
    /net\.ipv4\.tcp_wmem\s+managed above the value pinned by \/etc\/sysctl\.conf:1/,
  );
});
