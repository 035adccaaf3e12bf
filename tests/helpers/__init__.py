"""Helpers shared by the tests (not tests themselves): servers, browsers, peers, waits."""
