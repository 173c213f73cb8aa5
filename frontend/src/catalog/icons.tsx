/**
 * Catalog icons are lucide names. The icons the built-in catalog and common node packs use are
 * bundled here (the full set would weigh ~100 kB gzip); other names fall back to a box.
 */
import {
  Activity, AlarmClock, Bell, Binary, Box, Braces, Bug, Calculator, ChevronsUpDown, Clock, Cloud, Code, Cpu,
  Database, Factory, Funnel, Gauge, GitBranch, HardDrive, Layers, Mail, MoveHorizontal, Plug, Radar, Radio,
  RadioTower, Ruler, Send, Server, ShieldCheck, Sigma, Table, Tags, Thermometer, Timer, TrendingUp, Webhook,
  Workflow, Zap, type LucideIcon,
} from "lucide-react";

const ICONS: Record<string, LucideIcon> = {
  activity: Activity,
  "alarm-clock": AlarmClock,
  bell: Bell,
  binary: Binary,
  box: Box,
  braces: Braces,
  bug: Bug,
  calculator: Calculator,
  "chevrons-up-down": ChevronsUpDown,
  clock: Clock,
  cloud: Cloud,
  code: Code,
  cpu: Cpu,
  database: Database,
  factory: Factory,
  filter: Funnel,
  funnel: Funnel,
  gauge: Gauge,
  "git-branch": GitBranch,
  "hard-drive": HardDrive,
  layers: Layers,
  mail: Mail,
  "move-horizontal": MoveHorizontal,
  plug: Plug,
  radar: Radar,
  radio: Radio,
  "radio-tower": RadioTower,
  ruler: Ruler,
  send: Send,
  server: Server,
  "shield-check": ShieldCheck,
  sigma: Sigma,
  table: Table,
  tags: Tags,
  thermometer: Thermometer,
  timer: Timer,
  "trending-up": TrendingUp,
  webhook: Webhook,
  workflow: Workflow,
  zap: Zap,
};

export function NodeIcon({ name, size = 16 }: { name: string | undefined; size?: number }) {
  const Icon = (name && ICONS[name]) || Box;
  return <Icon size={size} strokeWidth={1.8} aria-hidden="true" />;
}
