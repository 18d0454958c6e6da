/**
 * The publisher's settings (packaging/release.conf: project URL and package maintainer) as a
 * packager overrides them through the environment, for the package tests to build with and
 * find again in the packages.
 */
export const PUBLISHER = {
  BPFPILOT_URL: "https://example.org/bpfpilot",
  BPFPILOT_MAINTAINER: "Test Packager <packager@example.org>",
};
