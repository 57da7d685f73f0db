import { describe, expect, it } from "vitest";
import { DEFAULT_LEAD_CONFIG, LeadConfig } from "../../src/domain/leads/config";
import { gradeLead } from "../../src/domain/leads/grade";
import { chooseConsultant, onShift, type Candidate } from "../../src/domain/leads/route";

const NOW = new Date("2026-11-24T03:00:00.000Z"); // Tuesday 11:00 in Asia/Shanghai
const TZ = "Asia/Shanghai";
const g = DEFAULT_LEAD_CONFIG.grading;

describe("gradeLead", () => {
  it("adds the points of need, source, engagement, spending, signals and recency, and cuts grades at the thresholds", () => {
    const hot = gradeLead({ source: "referral", needs: ["种植牙"], engagement: "高", spending: "高消费", signalScore: 10, lastSignalAt: NOW }, g, NOW);
    expect(hot.parts).toEqual({ need: 25, source: 25, engagement: 20, spending: 20, signals: 10, recency: 10 });
    expect(hot).toMatchObject({ score: 100, grade: "A" });
    const cold = gradeLead({ source: "import", needs: [], engagement: "低", spending: null, signalScore: 0, lastSignalAt: new Date(NOW.getTime() - 30 * 86_400_000) }, g, NOW);
    expect(cold).toMatchObject({ score: 5, grade: "D" });
    // 50 is B's lowest score, 49 is a C.
    const at = (score: number) => gradeLead({ source: "other-source", needs: [], engagement: null, spending: null, signalScore: score - 5 - 10, lastSignalAt: NOW }, { ...g, signalMax: 100 }, NOW);
    expect(at(50).grade).toBe("B");
    expect(at(49).grade).toBe("C");
    expect(at(70).grade).toBe("A");
  });

  it("takes the best need, counts unknown needs and sources as `other`, caps signals and fades recency linearly", () => {
    const r = gradeLead({ source: "wechat-ad", needs: ["祛痘", "正畸", "纹眉"], engagement: null, spending: null, signalScore: 80, lastSignalAt: new Date(NOW.getTime() - 6 * 86_400_000) }, g, NOW);
    expect(r.parts.need).toBe(25);
    expect(r.parts.source).toBe(5);
    expect(r.parts.signals).toBe(15);
    // 3 days fresh, gone at 12: day 6 keeps 2/3 of the points.
    expect(r.parts.recency).toBe(7);
  });

  it("refuses thresholds that do not fall from A to C, naming the field", () => {
    const p = LeadConfig.safeParse({ grading: { thresholds: { A: 40, B: 50, C: 30 } } });
    expect(p.success).toBe(false);
    expect(p.error!.issues[0]!.path).toEqual(["grading", "thresholds"]);
  });
});

const consultant = (id: string, o: Partial<Candidate> = {}): Candidate => ({ id, skills: [], capacity: 10, openLeads: 0, turns: 0, lastAt: null, shift: null, ...o });

describe("chooseConsultant", () => {
  const chain = (strategies: string[], onShiftOnly = true) => LeadConfig.parse({ assignment: { chain: strategies.map((strategy) => ({ strategy, onShiftOnly })) } }).assignment;

  it("skill match picks a consultant with the need among their skills, the least loaded first", () => {
    const cs = [consultant("a", { skills: ["正畸"], openLeads: 5 }), consultant("b", { skills: ["正畸", "种植牙"], openLeads: 1 }), consultant("c")];
    expect(chooseConsultant(cs, { needs: ["正畸"] }, chain(["skill"]), NOW, TZ)).toEqual({ staffId: "b", strategy: "skill" });
    // Nobody has the skill: the next step of the chain decides.
    expect(chooseConsultant(cs, { needs: ["减重"] }, chain(["skill", "round_robin"]), NOW, TZ)?.strategy).toBe("round_robin");
    expect(chooseConsultant(cs, { needs: ["减重"] }, chain(["skill"]), NOW, TZ)).toBeNull();
  });

  it("round-robin gives the next turn to the fewest turns, then the longest waiting, so shares differ by at most one", () => {
    const cs = ["a", "b", "c"].map((id) => consultant(id));
    const counts = new Map<string, number>();
    for (let i = 0; i < 100; i++) {
      const pick = chooseConsultant(cs, { needs: [] }, chain(["round_robin"]), NOW, TZ)!;
      const c = cs.find((x) => x.id === pick.staffId)!;
      c.turns++;
      c.lastAt = new Date(NOW.getTime() + i);
      counts.set(c.id, (counts.get(c.id) ?? 0) + 1);
    }
    expect([...counts.values()].sort()).toEqual([33, 33, 34]);
  });

  it("weighted shares follow the weights; a weight of 0 takes none", () => {
    const cs = ["a", "b", "c"].map((id) => consultant(id, { capacity: 1000 }));
    const config = { ...chain(["weighted"]), weights: { a: 3, b: 1, c: 0 } } as LeadConfig["assignment"];
    const counts = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const pick = chooseConsultant(cs, { needs: [] }, config, NOW, TZ)!;
      cs.find((x) => x.id === pick.staffId)!.turns++;
      counts.set(pick.staffId, (counts.get(pick.staffId) ?? 0) + 1);
    }
    expect(counts.get("a")).toBe(300);
    expect(counts.get("b")).toBe(100);
    expect(counts.get("c")).toBeUndefined();
  });

  it("never picks a consultant at capacity or (when asked) off shift, or one excluded", () => {
    const cs = [consultant("full", { openLeads: 10 }), consultant("night", { shift: { tue: ["20:00", "23:59"] } }), consultant("day", { shift: { tue: ["09:00", "18:00"] }, turns: 50 })];
    expect(chooseConsultant(cs, { needs: [] }, chain(["least_loaded"]), NOW, TZ)?.staffId).toBe("day");
    expect(chooseConsultant(cs, { needs: [] }, chain(["round_robin"], false), NOW, TZ)?.staffId).toBe("night");
    expect(chooseConsultant(cs, { needs: [] }, chain(["least_loaded"]), NOW, TZ, new Set(["day"]))).toBeNull();
  });

  it("reads shifts in the tenant's time zone, including overnight shifts", () => {
    expect(onShift({ tue: ["09:00", "18:00"] }, NOW, TZ)).toBe(true);
    expect(onShift({ tue: ["09:00", "18:00"] }, NOW, "UTC")).toBe(false); // 03:00 UTC
    expect(onShift({ tue: ["22:00", "04:00"] }, NOW, "UTC")).toBe(true);
    expect(onShift({ mon: ["09:00", "18:00"] }, NOW, TZ)).toBe(false);
    expect(onShift(null, NOW, TZ)).toBe(true);
  });
});
